"""Notebook 06 (paper 4.4): Table 2-4, frequency bins, confused pairs, paper vs reproduced, the paper's numbers."""
import numpy as np
import pandas as pd
import pytest
from conftest import assert_png_figure

from bertxml_lib.core.atomic import write_csv, write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation import analysis, metrics
from bertxml_lib.evaluation.paper_results import BERT_FAMILIES, FAMILIES, paper_facts, paper_table2, paper_table4
from bertxml_lib.evaluation.predictions import Predictions, save_predictions

# Four test notes, three codes (worked by hand in the tests below).
CODES = ["G44.029", "G44.329", "I10"]
Y = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
P = np.array([[0.3, 0.6, 0.1], [0.4, 0.2, 0.9], [0.5, 0.7, 0.2], [0.2, 0.1, 0.8]], dtype=np.float32)
DESCRIPTIONS = {"G44.029": "Chronic cluster headache", "G44.329": "Chronic post-traumatic headache", "I10": "HTN"}


def pred(row: str, probs=P) -> Predictions:
    ids = np.array([f"n{i}" for i in range(len(probs))])
    return Predictions(row, np.array(CODES), ids[:1], probs[:1], ids, probs)


# --- the paper's numbers ---------------------------------------------------------------------

def test_paper_table2_holds_every_row_and_its_best_is_big_xml_1024():
    t2 = paper_table2()
    assert len(t2) == 14 and set(t2["family"]) <= set(FAMILIES)
    best = t2.loc[t2["micro_auc"].idxmax()]
    assert best["model"] == "EHR BERT Big + XML (max length 1024)"
    assert (best["micro_auc"], best["macro_auc"], best["max_len"]) == (0.970, 0.927, 1024)
    assert t2.loc[t2["family"] == "logreg", ["micro_auc", "macro_auc"]].values.tolist() == [[0.932, 0.815]]
    assert t2.loc[t2["family"] == "biobert", "max_len"].isna().all()  # not stated in the paper


def test_paper_table4_and_facts_are_consistent_with_the_text():
    t4 = paper_table4()
    assert len(t4) == 45 and t4["code"].is_unique and t4["paper_position"].tolist() == list(range(1, 46))
    assert t4.set_index("code").loc["Z00.00", "auc"] == 0.988
    facts = paper_facts()
    assert facts["oov_words_per_note"] == {"section": "3.2", "general": 49.2, "ehr": 0.93}
    assert facts["cohort"]["label_set_size"] == facts["per_code"]["n_codes"] == 2292
    assert facts["per_code"]["n_codes_high_auc"] == 467 and facts["table3"]["n_codes"] == 757
    t2 = paper_table2().set_index("model")
    # Section 5's XML gain (0.002, Big, 1024) is the difference of two Table 2 rows.
    gain = t2.loc["EHR BERT Big + XML (max length 1024)", "micro_auc"] - t2.loc["EHR BERT Big (max length 1024)", "micro_auc"]
    assert gain == pytest.approx(facts["xml_micro_gain"]["value"])
    facts["cohort"]["notes"] = 0
    assert paper_facts()["cohort"]["notes"] == 7_500_000  # callers get a copy


# --- tables from predictions -----------------------------------------------------------------

def test_row_meta_from_record_or_name():
    assert analysis.row_meta("ehr_mini_xml_1024")["family"] == "xml"
    assert analysis.row_meta("ehr_mini_xml_1024")["encoder"] == "mini"
    assert analysis.row_meta("logreg_512") == {"family": "logreg", "encoder": "", "max_len": 512,
                                               "train_seconds": pytest.approx(np.nan, nan_ok=True)}
    assert analysis.row_meta("x", {"family": "offshelf", "max_len": 512, "train_seconds": 3})["train_seconds"] == 3
    with pytest.raises(ValueError, match="row 'mystery'"):
        analysis.row_meta("mystery")


def test_table2_recomputes_aucs_and_sorts_logreg_first():
    worse = np.where(Y > 0, 0.5, P)
    preds = [pred("ehr_mini_xml_1024"), pred("ehr_mini_cls_512", worse), pred("logreg_512", worse)]
    t2 = analysis.table2(preds, Y, {"ehr_mini_xml_1024": {"train_seconds": 12.0}})
    assert t2["model"].tolist() == ["logreg_512", "ehr_mini_cls_512", "ehr_mini_xml_1024"]
    xml = t2.set_index("model").loc["ehr_mini_xml_1024"]
    # Per-code AUCs of P: 0.5, 1.0, 1.0 (see test_confused_pairs...) -> macro 5/6.
    assert xml["macro_auc"] == pytest.approx(5 / 6) and xml["n_codes_skipped"] == 0 and xml["n_codes"] == 3
    assert xml["micro_auc"] == metrics.micro_auc(Y, P) and xml["train_seconds"] == 12.0
    # Without a dev threshold or patient ids, F1 and the CIs are not reported (never tuned on test).
    assert np.isnan(xml["micro_f1"]) and np.isnan(xml["micro_auc_ci_low"]) and xml["n_bootstrap"] == 0
    assert xml["map"] == pytest.approx(metrics.mean_average_precision(Y, P))
    with pytest.raises(ValueError, match="align them first"):
        analysis.table2([pred("logreg_512", P[:3])], Y, {})


def test_table2_has_every_metric_column_with_cis():
    t2 = analysis.table2([pred("ehr_mini_xml_1024")], Y, {}, {"ehr_mini_xml_1024": 0.5}, ["a", "a", "b", "c"],
                         n_bootstrap=30, seed=0)
    for col in ("model", "max_len", "micro_auc", "macro_auc", "micro_f1", "macro_f1", "macro_f1_present", "p_at_5",
                "p_at_8", "p_at_15", "r_at_10", "map", "family", "encoder", "n_codes", "n_codes_skipped",
                "train_seconds", "micro_auc_ci_low", "map_ci_high"):
        assert col in t2.columns, col
    row = t2.iloc[0]
    # At 0.5 (see test_frequency_bins_...): per-code F1 0, 2/3, 1; TP 3, FP 2, FN 2 -> micro F1 6/10.
    assert row["micro_f1"] == pytest.approx(0.6) and row["macro_f1"] == pytest.approx(5 / 9)
    assert row["threshold"] == 0.5 and row["threshold_mode"] == "dev_global" and row["n_bootstrap"] == 30
    assert row["micro_auc_ci_low"] <= row["micro_auc"] <= row["micro_auc_ci_high"]
    per_code = analysis.table2([pred("r")], Y, {"r": {"family": "xml"}}, {"r": np.array([0.5, 0.1, 0.3])})
    assert per_code.loc[0, "threshold"] == 0.3 and per_code.loc[0, "threshold_mode"] == "dev_per_code_median"


def test_frequency_bins_by_hand():
    assert analysis.frequency_bin_of([1, 2, 3, 4, 5, 6, 7, 8], 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert analysis.frequency_bin_of([5, 5, 5, 9], 4).tolist() == [0, 0, 0, 1]  # ties share a bin, none empty
    # Train counts 10, 20, 500 in 2 quantile bins: edge at the median 20 -> {G44.029}, {G44.329, I10}.
    # At threshold 0.5 the per-code F1 are 0 (predicts n2 only), 2/3 (n0, n2 for n2) and 1; AUCs 0.5, 1, 1.
    bins = analysis.frequency_bins([pred("ehr_mini_xml_1024")], Y, {"G44.029": 10, "G44.329": 20, "I10": 500},
                                   CODES, {"ehr_mini_xml_1024": 0.5}, n_bins=2)
    assert bins["bin_label"].tolist() == ["10-10", "20-500"] and bins["n_codes"].tolist() == [1, 2]
    assert bins["macro_auc"].tolist() == [0.5, 1.0]
    assert bins["macro_f1"].tolist() == pytest.approx([0.0, 5 / 6])
    assert bins["test_positives"].tolist() == [2, 3]
    no_threshold = analysis.frequency_bins([pred("logreg_512")], Y, {c: 1 for c in CODES}, CODES, {}, n_bins=3)
    assert len(no_threshold) == 1 and np.isnan(no_threshold.loc[0, "macro_f1"])


def test_table3_uses_only_codes_below_the_training_count_threshold():
    t3 = analysis.table3_low_frequency([pred("ehr_mini_xml_1024")], Y, {"G44.029": 10, "G44.329": 20, "I10": 500},
                                       CODES, low_freq_max=50)
    row = t3.iloc[0]
    assert (row["n_low_freq_codes"], row["n_low_freq_evaluated"]) == (2, 2)
    assert row["macro_auc_low_freq"] == pytest.approx(0.75)  # (0.5 + 1.0) / 2
    assert row["macro_auc_all"] == pytest.approx(5 / 6) and row["family"] == "xml"
    none = analysis.table3_low_frequency([pred("ehr_mini_xml_1024")], Y, {c: 500 for c in CODES}, CODES, 50)
    assert none.iloc[0]["n_low_freq_codes"] == 0 and np.isnan(none.iloc[0]["macro_auc_low_freq"])
    with pytest.raises(ValueError, match="train_counts lacks"):
        analysis.table3_low_frequency([pred("a_b")], Y, {}, CODES, 50)


def test_table4_orders_by_test_count_and_joins_the_paper():
    t4 = analysis.table4_per_code(pred("ehr_mini_xml_1024"), Y, CODES, DESCRIPTIONS,
                                  {"G44.029": 10, "G44.329": 20, "I10": 500}, top=2)
    # Test counts: G44.029 2, I10 2 (tie -> more training notes first), G44.329 1.
    assert t4["code"].tolist() == ["I10", "G44.029"] and t4["rank"].tolist() == [1, 2]
    assert t4["test_count"].tolist() == [2, 2] and t4["auc"].tolist() == [1.0, 0.5]
    assert t4.loc[0, "paper_test_count"] == 391298 and t4.loc[0, "paper_auc"] == 0.877
    assert pd.isna(t4.loc[1, "paper_auc"]) and t4.loc[0, "description"] == "HTN"


def test_confused_pairs_finds_the_related_code_scored_above_on_positive_notes():
    # G44.029 positives n0, n1; G44.329 absent on both and scored above on n0 only -> rate 1/2.
    # Unrelated I10 is absent on n0 only and scored below there -> other_rate 0.
    df = analysis.confused_pairs(pred("r"), Y, CODES, DESCRIPTIONS, top=3)
    first = df.iloc[0]
    assert (first["code"], first["auc"], first["confused_with"], first["rate"]) == ("G44.029", 0.5, "G44.329", 0.5)
    assert first["same_category"] and first["n_compared"] == 2 and first["other_rate"] == 0.0
    assert first["confused_description"] == "Chronic post-traumatic headache"
    # I10 has no same-category code: falls back to every code (all rates 0 -> the first, G44.029).
    last = df.set_index("code").loc["I10"]
    assert not last["same_category"] and last["confused_with"] == "G44.029" and last["rate"] == 0.0
    assert df["code"].tolist() == ["G44.029", "G44.329", "I10"]


def test_count_high_auc_and_figure(tmp_path):
    aucs = np.array([0.99, 0.98, 0.5, np.nan])
    assert analysis.count_high_auc(aucs, 0.98) == (2, 3)
    path = tmp_path / "fig2.png"
    fig = analysis.auc_distribution_figure({"a": aucs, "b": np.array([0.7, 0.9])}, path)
    assert_png_figure(path, fig, ("Figure 2", "a", "b"))
    with pytest.raises(ValueError, match="at least one row"):
        analysis.auc_distribution_figure({}, path)


# --- paper vs reproduced ---------------------------------------------------------------------

def hand_table2() -> pd.DataFrame:
    return pd.DataFrame([
        ("logreg_512", "logreg", "", 512, 0.80, 0.70, 10.0),
        ("ehr_mini_cls_512", "cls", "mini", 512, 0.85, 0.75, 100.0),
        ("ehr_mini_cls_1024", "cls", "mini", 1024, 0.86, 0.74, 250.0),
        ("ehr_mini_xml_512", "xml", "mini", 512, 0.84, 0.76, 110.0),
        ("ehr_mini_xml_1024", "xml", "mini", 1024, 0.88, 0.78, 300.0),
    ], columns=["model", "family", "encoder", "max_len", "micro_auc", "macro_auc", "train_seconds"])


def hand_samples() -> dict:
    """Four shared resamples per row (micro and macro AUC), chosen so each paired verdict is worked by hand."""
    micro = {"logreg_512": [0.80, 0.79, 0.81, 0.80], "ehr_mini_cls_512": [0.85, 0.84, 0.86, 0.85],
             "ehr_mini_cls_1024": [0.86, 0.85, 0.87, 0.80], "ehr_mini_xml_512": [0.84, 0.83, 0.85, 0.84],
             "ehr_mini_xml_1024": [0.88, 0.87, 0.89, 0.88]}
    macro = {"logreg_512": [0.70] * 4, "ehr_mini_cls_512": [0.75] * 4, "ehr_mini_cls_1024": [0.74, 0.73, 0.74, 0.74],
             "ehr_mini_xml_512": [0.76] * 4, "ehr_mini_xml_1024": [0.78] * 4}
    # Three codes, the first two low-frequency: mean of the first two / of all three per resample.
    per_code = {"logreg_512": [[0.6, 0.6, 0.9]] * 4, "ehr_mini_xml_1024": [[0.7, 0.7, 0.94]] * 4}
    return {r: {"micro_auc": np.array(micro[r]), "macro_auc": np.array(macro[r]),
                **({"per_code_auc": np.array(per_code[r])} if r in per_code else {})} for r in micro}


def test_paper_vs_reproduced_decides_every_comparison_from_paired_intervals():
    t3 = pd.DataFrame({"model": ["logreg_512", "ehr_mini_xml_1024"], "low_freq_max": [50, 50],
                       "n_low_freq_evaluated": [2, 2], "macro_auc_low_freq": [0.60, 0.70],
                       "macro_auc_all": [0.70, 0.78]})
    confused = analysis.confused_pairs(pred("r"), Y, CODES, DESCRIPTIONS, top=1)
    pairs: list = []
    df = analysis.paper_vs_reproduced(hand_table2(), t3, {"row": "ehr_mini_xml_1024", "n_high": 3, "n_evaluated": 10,
                                                           "threshold": 0.98}, confused, {"general": 40.0, "ehr": 1.0},
                                      4.1, hand_samples(), np.array([True, True, False]), pairs)
    assert list(df.columns) == ["quantity", "paper", "reproduced", "metric", "better", "worse", "difference",
                                "ci_low", "ci_high", "verdict", "note"]
    v = df.set_index("quantity")
    best = v.loc["BERT-XML at the longest input beats every other row (micro AUC)"]
    # xml_1024 minus cls_1024 per resample: 0.02, 0.02, 0.02, 0.08 -> the lowest interval of the four pairs.
    assert best["verdict"] == "holds" and best["worse"] == "ehr_mini_cls_1024"
    assert best["ci_low"] == pytest.approx(0.02) and best["difference"] == pytest.approx(0.02)
    assert v.loc["best micro AUC (Table 2)", ["paper", "reproduced", "verdict"]].tolist() == [0.97, 0.88, "n.a."]
    lr = v.loc["every BERT row beats logistic regression (micro AUC)"]
    # cls_1024 - logreg: 0.06, 0.06, 0.06, 0.0 -> 2.5% point 0.0 + 0.075 * 0.06 = 0.0045 > 0: holds.
    assert lr["verdict"] == "holds" and lr["better"] == "ehr_mini_cls_1024" and lr["ci_low"] == pytest.approx(0.0045)
    assert lr["paper"] == "12/12 BERT rows above LogReg 0.932" and lr["note"].startswith("4 pair(s): 4 holds")
    xml = v.loc["XML head beats [CLS] head at max_len 1024 (macro AUC)"]
    assert xml["verdict"] == "holds" and xml["paper"] == "small: 0.924 vs 0.918; big: 0.927 vs 0.925"
    # cls: 1024 - 512 = 0.01, 0.01, 0.01, -0.05 spans 0; xml: 0.04 every time -> the finding is inconclusive.
    longer = v.loc["max_len 1024 beats 512 (micro AUC)"]
    assert longer["verdict"] == "inconclusive" and longer["better"] == "ehr_mini_cls_1024"
    assert longer["note"].startswith("2 pair(s): 1 holds, 1 inconclusive")
    assert longer["paper"].count(" vs ") == 4
    # Macro: cls 1024 - 512 = -0.01, -0.02, -0.01, -0.01 lies below 0: contradicted, whatever the xml pair says.
    longer_macro = v.loc["max_len 1024 beats 512 (macro AUC)"]
    assert longer_macro["verdict"] == "contradicted" and longer_macro["ci_high"] == pytest.approx(-0.01)
    assert v.loc["training time at max_len 1024 / at 512", "reproduced"] == pytest.approx((2.5 + 300 / 110) / 2, abs=0.01)
    # Table 3 from per-code resamples: low 0.70 vs 0.60 holds; margin 0.10 vs 0.08 holds; 0.70 vs 0.78 contradicted.
    table3 = df[df["quantity"].str.contains("Table 3")]
    assert table3["verdict"].tolist() == ["holds", "holds", "contradicted"]
    assert table3["difference"].tolist() == pytest.approx([0.10, 0.02, -0.08])
    assert df[df["quantity"].str.startswith("BERT's margin")]["paper"].iloc[0] == "0.108 vs 0.068"
    assert v.loc["codes with AUC >= 0.98 (4.4, Figure 2)", "reproduced"].startswith("3 of 10 (30.0%")
    assert v.loc["codes per training note (4.1)", ["paper", "reproduced"]].tolist() == [4.46, 4.1]
    for fact in ("low-AUC codes are confused with closely related codes (4.4)",
                 "OOV words per note, general vs EHR vocabulary (3.2)", "codes per training note (4.1)"):
        assert v.loc[fact, "verdict"] == "n.a."  # described, not a paired model comparison
    assert set(df["verdict"]) <= {"holds", "contradicted", "inconclusive", "n.a."}
    logged = analysis.comparison_pairs(pairs)
    assert set(logged["verdict"]) <= {"holds", "contradicted", "inconclusive"} and len(logged) == 4 + 4 + 4 + 2 + 4 + 1
    one = logged[(logged["better"] == "ehr_mini_xml_1024") & (logged["worse"] == "ehr_mini_xml_512")].iloc[0]
    assert one["difference"] == pytest.approx(0.04) and one["verdict"] == "holds"


def test_paper_vs_reproduced_without_resamples_draws_no_verdict():
    df = analysis.paper_vs_reproduced(hand_table2()).set_index("quantity")
    row = df.loc["XML head beats [CLS] head at max_len 1024 (micro AUC)"]
    assert row["verdict"] == "n.a." and row["difference"] == pytest.approx(0.02) and np.isnan(row["ci_low"])
    assert "analysis.n_bootstrap = 0" in row["note"]
    assert set(df["verdict"]) == {"n.a."}


def test_paper_vs_reproduced_says_n_a_when_nothing_comparable_was_run():
    only_xml = hand_table2().iloc[[4]]
    df = analysis.paper_vs_reproduced(only_xml).set_index("quantity")
    assert df.loc["every BERT row beats logistic regression (micro AUC)", "verdict"] == "n.a."
    assert df.loc["max_len 1024 beats 512 (micro AUC)", "note"] == "no comparable pair of rows was run"
    assert df.loc["OOV words per note, general vs EHR vocabulary (3.2)", "reproduced"] == "not measured"
    assert (df.loc[df.index.str.contains("Table 3"), "verdict"] == "n.a.").all()


def test_reference_rows_take_part_in_no_finding():
    t2 = pd.concat([hand_table2(), pd.DataFrame([("prior", "prior", "", None, 0.70, 0.5, 0.0),
                                                  ("oracle", "oracle", "", None, 0.99, 0.99, 0.0)],
                                                 columns=hand_table2().columns)], ignore_index=True)
    df = analysis.paper_vs_reproduced(t2, samples=hand_samples()).set_index("quantity")
    assert df.loc["best micro AUC (Table 2)", "reproduced"] == 0.88  # not the oracle's 0.99
    assert df.loc["BERT-XML at the longest input beats every other row (micro AUC)", "verdict"] == "holds"


def test_headroom_share_places_rows_between_prior_and_oracle():
    t2 = pd.DataFrame({"model": ["prior", "logreg_512", "ehr_mini_xml_1024", "oracle"],
                       "micro_auc": [0.60, 0.75, 0.66, 0.90]})
    out = analysis.headroom(t2)
    # (0.75 - 0.60) / (0.90 - 0.60) = 0.5; (0.66 - 0.60) / 0.30 = 0.2; the floor 0, the ceiling 1.
    assert out["headroom_share"].tolist() == pytest.approx([0.0, 0.5, 0.2, 1.0])
    samples = {"prior": {"micro_auc": np.array([0.6, 0.6])}, "oracle": {"micro_auc": np.array([0.9, 0.8])},
               "logreg_512": {"micro_auc": np.array([0.75, 0.7])}}
    ci = analysis.headroom(t2, samples).set_index("model")
    # Per resample: 0.15 / 0.3 = 0.5 and 0.1 / 0.2 = 0.5 -> the interval is [0.5, 0.5].
    assert ci.loc["logreg_512", ["headroom_share_ci_low", "headroom_share_ci_high"]].tolist() == pytest.approx([0.5, 0.5])
    assert np.isnan(ci.loc["ehr_mini_xml_1024", "headroom_share_ci_low"])  # no resamples for it
    real = analysis.headroom(t2[t2["model"] != "oracle"])  # real data: no ceiling, no share
    assert real["headroom_share"].isna().all()


# --- the stage on a tiny run folder ----------------------------------------------------------

def make_run(tmp_path):
    """Cohort of 20 notes (12 train, 2 dev, 6 test) over four codes, and three rows of predictions."""
    rng = np.random.default_rng(0)
    codes = ["I10", "E11.9", "E11.65", "J45.909"]
    splits = ["train"] * 12 + ["dev"] * 2 + ["test"] * 6
    labels = [[c for c in codes if rng.random() < 0.4] for _ in splits]
    labels[14:20] = [["I10", "E11.9"], ["E11.65"], ["I10", "J45.909"], [], ["E11.9", "J45.909"], ["E11.65", "I10"]]
    notes = pd.DataFrame({"patient_id": [f"p{i}" for i in range(20)], "note_id": [f"n{i}" for i in range(20)],
                          "note_date": pd.Timestamp("2020-01-01"), "note_type": "progress note",
                          "text": "note text", "split": splits, "codes": [ls + ["Z99.89"] for ls in labels],
                          "labels": labels})
    paths = RunPaths(tmp_path)
    paths.cohort_dir.mkdir(parents=True)
    notes.to_parquet(paths.cohort_notes, index=False)
    write_json(paths.label_set, {"codes": codes, "descriptions": {c: f"desc {c}" for c in codes},
                                 "train_counts": {"I10": 9, "E11.9": 6, "E11.65": 4, "J45.909": 3}, "min_train_count": 1})
    y = np.array([[c in ls for c in codes] for ls in labels[14:]], dtype=float)
    test_ids, dev_ids = [f"n{i}" for i in range(14, 20)], ["n12", "n13"]
    for row, noise in (("logreg_512", 0.9), ("ehr_mini_cls_1024", 0.6), ("ehr_mini_xml_1024", 0.3)):
        probs = np.clip(y * 0.5 + rng.random(y.shape) * noise, 0, 1)
        dev_probs = np.random.default_rng(int(noise * 10)).random((2, 4))  # own generator: test probs unchanged
        save_predictions(paths.predictions_file(row), codes, dev_ids, dev_probs, test_ids, probs)
        if row != "ehr_mini_cls_1024":  # one row without a metrics record: meta comes from its name
            write_json(paths.metrics_file(row), {"model": row, "family": row.split("_")[2] if "ehr" in row else "logreg",
                                                 "encoder": "mini" if "ehr" in row else "", "max_len": int(row[-4:].strip("_")),
                                                 "train_seconds": 5.0})
    write_csv(paths.table("oov_summary.csv"), pd.DataFrame({
        "tokenizer": ["ehr_wordpiece", "general_bert_base_uncased"], "oov_words_per_note": [0.5, 20.0]}))
    return paths, codes, y


def test_run_analysis_writes_every_table_and_figure(tmp_path):
    paths, codes, y = make_run(tmp_path)
    # Shuffle one file's notes and codes: alignment by note id and code must undo it.
    from bertxml_lib.evaluation.predictions import load_predictions
    p = load_predictions(paths.predictions_file("logreg_512"))
    expected = metrics.micro_auc(y, p.test_probs)
    order, cols = [5, 3, 1, 0, 2, 4], [2, 0, 3, 1]
    save_predictions(paths.predictions_file("logreg_512"), p.codes[cols], p.dev_note_ids, p.dev_probs[:, cols],
                     p.test_note_ids[order], p.test_probs[np.ix_(order, cols)])

    res = analysis.run_analysis(tmp_path, low_freq_max=5, top_codes=3, high_auc=0.98, confused_top=2,
                                n_bootstrap=25, n_freq_bins=2, min_test_positives=3)
    for name in ("table2.csv", "table3_low_frequency.csv", "table4_per_code.csv", "paper_vs_reproduced.csv",
                 "confused_pairs.csv", "frequency_bins.csv"):
        assert paths.table(name).exists(), name
    for name in ("figure2_auc_distribution.png", "frequency_bins.png"):
        assert_png_figure(paths.figure(name))
    assert paths.table("paper_vs_reproduced_pairs.csv").exists()
    assert pd.read_csv(paths.table("table2.csv"))[analysis.CI_COLUMNS[:4]].notna().all().all()
    # The floor row `prior` is written by the stage and joins every table (no oracle: not synthetic here).
    assert paths.predictions_file("prior").exists() and paths.metrics_file("prior").exists()
    assert len(res["frequency_bins"]) == 4 * 2 and set(res["frequency_bins"]["bin"]) == {0, 1}
    assert set(res["thresholds"]) == {"prior", "logreg_512", "ehr_mini_cls_1024", "ehr_mini_xml_1024"}
    t2 = pd.read_csv(paths.table("table2.csv"))
    assert t2["model"].tolist() == ["prior", "logreg_512", "ehr_mini_cls_1024", "ehr_mini_xml_1024"]
    assert t2.loc[1, "micro_auc"] == pytest.approx(expected, abs=1e-6)
    assert t2.loc[0, "macro_auc"] == 0.5 and t2["headroom_share"].isna().all()  # no oracle, no share
    # Test positives per code: I10 3, E11.9 2, E11.65 2, J45.909 2 -> 1 code with >= 3 (min_test_positives=3).
    assert (t2["n_codes_macro"] == 1).all() and (t2["min_test_positives"] == 3).all()
    assert t2.loc[2, "family"] == "cls" and "train_seconds" not in t2  # timings: metrics/timings/analysis.json
    assert np.isnan(res["table2"].loc[2, "train_seconds"])
    assert res["best_row"] == "ehr_mini_xml_1024" and len(res["table4"]) == 3
    assert set(res["per_code_auc"]) == {"prior", "logreg_512", "ehr_mini_cls_1024", "ehr_mini_xml_1024"}
    assert res["table3"]["n_low_freq_codes"].tolist() == [2, 2, 2, 2]  # E11.65 (4), J45.909 (3) < 5
    assert res["table3"]["model"].tolist() == t2["model"].tolist()
    assert set(res["table4"]["model"]) == {"ehr_mini_xml_1024"}
    v = res["paper_vs_reproduced"].set_index("quantity")
    assert v.loc["OOV words per note, general vs EHR vocabulary (3.2)", "reproduced"] == "20.00 vs 0.50"
    assert v.loc["codes per training note (4.1)", "reproduced"] == pytest.approx(
        np.mean([len(ls) + 1 for ls in pd.read_parquet(paths.cohort_notes)["labels"][:12]]))


def test_run_analysis_thresholds_ignore_test_labels(tmp_path):
    paths, codes, y = make_run(tmp_path)
    first = analysis.run_analysis(tmp_path, n_bootstrap=0)
    notes = pd.read_parquet(paths.cohort_notes)
    test = notes["split"] == "test"
    notes.loc[test, "labels"] = pd.Series([[c for c in codes if c not in ls] for ls in notes.loc[test, "labels"]],
                                          index=notes.index[test])  # flip every test label
    notes.to_parquet(paths.cohort_notes, index=False)
    second = analysis.run_analysis(tmp_path, n_bootstrap=0)
    assert second["thresholds"] == first["thresholds"] and len(set(first["thresholds"].values())) > 1
    assert (second["table2"]["threshold"] == first["table2"]["threshold"]).all()
    assert not np.allclose(second["table2"]["micro_f1"], first["table2"]["micro_f1"])
    assert second["table2"]["n_bootstrap"].eq(0).all() and second["table2"]["micro_auc_ci_low"].isna().all()


def test_run_analysis_without_predictions_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebooks 04 and 05"):
        analysis.run_analysis(tmp_path)


def test_bert_families_are_known_families():
    assert set(BERT_FAMILIES) < set(FAMILIES)


def test_confused_pairs_groups_icd9_codes_by_category():
    # The same predictions with ICD-9-CM labels: 401.9 and 401.1 share category 401; E849.0 stands alone.
    codes9 = ["401.9", "401.1", "E849.0"]
    p9 = Predictions("r", np.array(codes9), np.array(["n0"]), P[:1], np.array([f"n{i}" for i in range(4)]), P)
    df = analysis.confused_pairs(p9, Y, codes9, {}, top=3, icd_version=9).set_index("code")
    assert df.loc["401.9", "confused_with"] == "401.1" and df.loc["401.9", "same_category"]
    assert df.loc["401.9", "rate"] == 0.5 and df.loc["401.9", "confused_description"] == "401.1"
    assert not df.loc["E849.0", "same_category"]


def test_timings_leave_the_tables_for_metrics_json(tmp_path):
    from bertxml_lib.core.atomic import read_json

    comparison = analysis.paper_vs_reproduced(hand_table2())
    t2, kept = analysis.write_timings(RunPaths(tmp_path), hand_table2(), comparison)
    assert "train_seconds" not in t2 and len(t2) == 5
    assert not kept["quantity"].isin(analysis.TIMING_QUANTITIES).any() and len(kept) == len(comparison) - 1
    saved = read_json(tmp_path / "metrics" / "timings" / "analysis.json")
    assert saved["train_seconds"]["ehr_mini_xml_1024"] == 300.0
    assert saved["paper_vs_reproduced"][0]["quantity"] == "training time at max_len 1024 / at 512"
