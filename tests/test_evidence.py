"""Notebook 09: evidence plausibility, under-coding audit, subgroups and automation on hand-made notes whose
evidence positions are known, with values worked out by hand."""
import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from bertxml_lib.core.atomic import write_json, write_parquet
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data.loaders import load_evidence_table
from bertxml_lib.data.validation import DataError
from bertxml_lib.evaluation import audit, evidence_metrics as em
from bertxml_lib.evaluation.predictions import save_predictions
from bertxml_lib.inference import predict
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.reporting.evidence_report import run_evidence
from bertxml_lib.text.tokenizer import train_wordpiece

NOTE = "Pt denies chest pain. Has type 2 diabetes, on metformin."
#        0123456789012345678901234567890123456789012345678901234
EVIDENCE = [(26, 41)]  # "type 2 diabetes": words 5, 6, 7 of 10


def test_word_units_and_overlap_sum():
    units = em.word_units(NOTE)
    assert len(units) == 10 and tuple(units[5]) == (26, 30) and NOTE[slice(*units[7])] == "diabetes"
    # WordPieces "dia" + "##betes" both land on the word "diabetes"; a window over two words gives both its score.
    offsets = np.array([[33, 36], [36, 41], [22, 30]])
    scores = em.unit_scores(units, offsets, np.array([0.25, 0.5, 0.125]))
    assert scores[7] == pytest.approx(0.75)
    assert scores[4] == scores[5] == pytest.approx(0.125)
    assert scores.sum() == pytest.approx(1.0)
    assert em.overlaps(units, EVIDENCE).tolist() == [False] * 5 + [True] * 3 + [False] * 2


def test_perfect_attention_scores_one():
    units = em.word_units(NOTE)
    mask = em.overlaps(units, EVIDENCE)
    got = em.plausibility(mask.astype(float), mask, k=3)
    assert got == {"recall_at_k": 1.0, "precision_at_k": 1.0, "auprc": 1.0}
    assert em.span_hit((26, 41), EVIDENCE) == 1.0 and em.span_hit((0, 9), EVIDENCE) == 0.0
    assert em.span_hit(None, EVIDENCE) == 0.0
    # The full pair, with the model's units being the words themselves and its top span on the evidence.
    pair = em.pair_scores(NOTE, EVIDENCE, units, mask.astype(float), (26, 41), k=3)
    assert pair["attention"] == {"recall_at_k": 1.0, "precision_at_k": 1.0, "auprc": 1.0, "span_hit": 1.0}


def test_uniform_attention_equals_the_random_expectation():
    mask = em.overlaps(em.word_units(NOTE), EVIDENCE)  # 3 evidence words of 10
    for k in (1, 3, 4):
        got = em.plausibility(np.full(10, 0.1), mask, k)
        expected = em.random_expectation(mask, k)
        assert got["recall_at_k"] == pytest.approx(expected["recall_at_k"]) == pytest.approx(k / 10)
        assert got["precision_at_k"] == pytest.approx(expected["precision_at_k"]) == pytest.approx(0.3)
        assert got["auprc"] == pytest.approx(expected["auprc"]) == pytest.approx(0.3)


def test_auprc_and_tied_top_k_by_hand():
    # Ranked: E, -, E, -  ->  precision at each evidence word 1/1 and 2/3: AP = (1 + 2/3) / 2.
    got = em.plausibility(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0], bool), k=2)
    assert got["auprc"] == pytest.approx(5 / 6)
    assert got["recall_at_k"] == pytest.approx(0.5) and got["precision_at_k"] == pytest.approx(0.5)
    # Top 2 of [1, .5, .5, .5]: the first word, plus one of three tied words (one of them evidence): 1/3 expected.
    assert em.top_k_hits(np.array([1, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 0], bool), 2) == pytest.approx(1 / 3)
    # k beyond the note: every evidence word is in; precision divides by the note's words.
    assert em.plausibility(np.array([0.2, 0.1]), np.array([1, 0], bool), k=5)["precision_at_k"] == 0.5


def test_tfidf_baseline_and_patient_bootstrap():
    idf = em.fit_idf(["pt denies chest pain", "pt has pain", "type 2 diabetes"])
    # "pt" is in 2 of 3 notes: ln(4/3) + 1; "diabetes" in 1: ln(4/2) + 1.
    assert idf["pt"] == pytest.approx(np.log(4 / 3) + 1) and idf["diabetes"] == pytest.approx(np.log(2) + 1)
    scores = em.tfidf_word_scores("pt pt diabetes", idf)
    assert scores.tolist() == pytest.approx([2 * idf["pt"], 2 * idf["pt"], idf["diabetes"]])
    mean, low, high = em.mean_with_ci([1.0, 0.0, 1.0, 1.0], ["a", "a", "b", "c"], 200, 0)
    assert mean == 0.75 and 0.0 <= low <= mean <= high <= 1.0
    assert np.isnan(em.mean_with_ci([1.0], ["a"], 0, 0)[1])


def test_undercoding_precision_on_a_hand_made_truth_table():
    probs = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.95], [0.6, 0.9, 0.3]])
    labels = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    suspects = audit.suspected_undercoding(probs, labels, np.array([0.5, 0.5, 0.5]), ["n1", "n2", "n3"],
                                           ["A", "B", "C"])
    # Label-0 pairs at or above 0.5: n1/B .8, n2/A .7, n2/C .95, n3/A .6, n3/B .9 — most confident first.
    assert list(zip(suspects["note_id"], suspects["code"])) == [("n2", "C"), ("n3", "B"), ("n1", "B"), ("n2", "A"),
                                                                 ("n3", "A")]
    truth = pd.DataFrame({"note_id": ["n1", "n2", "n3", "n3", "n2"], "code": ["B", "C", "A", "B", "A"],
                          "kind": ["evidenced", "past_history", "negated", "active_no_evidence", "family_history"],
                          "start": [0, 5, 9, -1, 3], "end": [4, 9, 12, -1, 7]})
    documented = audit.documented_pairs(truth)  # n1/B (missed code), n2/C (uncoded history)
    table = audit.undercoding_precision(suspects, documented).set_index("code")
    assert table.loc["ALL", ["n_suspected", "n_confirmed"]].tolist() == [5, 2]
    assert table.loc["ALL", "precision"] == pytest.approx(0.4)
    assert table.loc["A", "precision"] == 0.0 and table.loc["B", "precision"] == 0.5 and table.loc["C", "precision"] == 1.0


def test_automation_with_hand_set_thresholds():
    probs = np.array([[0.95, 0.1], [0.7, 0.1], [0.95, 0.92], [0.2, 0.1]])
    labels = np.array([[1, 0], [1, 0], [1, 0], [0, 0]])
    got = audit.automation(probs, labels, f1_thresholds=np.array([0.5, 0.5]), auto_thresholds=np.array([0.9, np.inf]))
    # Note 1: A confident, nothing uncertain -> auto. Note 2: A uncertain (0.5 <= .7 < .9). Note 3: B uncertain
    # (its automation threshold is never reached). Note 4: nothing confident -> not auto-coded.
    assert got["automation_rate"] == 0.25 and got["n_auto"] == 1 and got["auto_precision"] == 1.0
    # Exact code set: notes 1, 2 and 4 (an empty set that is right); note 3 predicts B wrongly.
    assert got["exact_match"] == 0.75


def test_precision_thresholds_use_dev_only_and_reach_the_target():
    dev_p = np.array([[0.9], [0.8], [0.7], [0.6], [0.5]])
    dev_y = np.array([[1], [1], [0], [1], [0]])
    # Precision at cuts .9/.8/.7/.6/.5: 1, 1, 2/3, 3/4, 3/5 -> the lowest cut with precision >= .95 is 0.8;
    # >= .7 is 0.6 (3/4).
    assert audit.precision_thresholds(dev_y, dev_p, 0.95).tolist() == [0.8]
    assert audit.precision_thresholds(dev_y, dev_p, 0.7).tolist() == [0.6]
    assert audit.precision_thresholds(np.zeros((5, 1)), dev_p, 0.95).tolist() == [np.inf]


def test_age_and_length_bins():
    assert audit.age_of("67 yo F presents") == 67 and audit.age_of("a 45-year-old man") == 45
    assert audit.age_of("Varón de 52 años") == 52 and np.isnan(audit.age_of("no age here"))
    assert [audit.age_band(a) for a in (30, 40, 70, np.nan)] == ["18-39", "40-64", "65+", "not stated"]
    edges = audit.length_bins([10, 20, 30, 40, 50], 2)  # train median 30
    assert edges.tolist() == [30.0]
    assert audit.length_bin_names([5, 30, 31], edges) == ["<= 30 words", "<= 30 words", "> 30 words"]


def test_evidence_table_offsets_and_bad_rows(tmp_path):
    notes = pd.DataFrame({"note_id": ["d1", "d2"], "text": ["Dolor torácico y fiebre.", "Sin hallazgos."]})
    path = tmp_path / "evidence.csv"
    path.write_text("note_id,code,spans,reference\nd1,r07.9,0 14,Dolor torácico\nd1,R50.9,17 23;5 5,fiebre\n"
                    "d9,I10,0 3,x\n", encoding="utf-8")
    truth = load_evidence_table(path, notes)
    assert truth[["code", "start", "end"]].values.tolist() == [["R07.9", 0, 14], ["R50.9", 17, 23]]
    assert [notes.text[0][s:e] for s, e in zip(truth.start, truth.end)] == ["Dolor torácico", "fiebre"]
    path.write_text("note_id,code,spans\nd2,R52,3 40\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"evidence.csv: column 'spans', data row 1: span 3-40 of note 'd2'"):
        load_evidence_table(path, notes)


CODES = ["I10", "E11.9"]


def _fake_run(root, test_labels):
    """A run folder with a cohort, a label set, synthetic truth and one row's predictions (no model)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        split = "train" if i < 20 else ("dev" if i < 30 else "test")
        labels = [c for c in CODES if rng.random() < 0.5]
        if split == "test":
            labels = test_labels[i - 30]
        rows.append({"patient_id": f"P{i // 2}", "note_id": f"n{i}", "note_date": pd.Timestamp("2020-01-01"),
                     "note_type": "progress" if i % 3 else "discharge", "text": f"{50 + i} yo with hypertension",
                     "split": split, "codes": labels, "labels": labels})
    notes = pd.DataFrame(rows)
    paths = RunPaths(root)
    write_parquet(paths.cohort_notes, notes)
    write_json(paths.label_set, {"codes": CODES, "descriptions": {c: c for c in CODES}, "train_counts": {c: 10 for c in CODES}})
    write_parquet(paths.truth, pd.DataFrame({"note_id": ["n35"], "code": ["E11.9"], "kind": ["evidenced"], "part": ["phrase"],
                                             "form": ["catalog"], "start": [0], "end": [2]}))
    dev, test = notes[notes.split == "dev"], notes[notes.split == "test"]
    y = lambda df: np.array([[c in ls for c in CODES] for ls in df["labels"]], float)  # noqa: E731
    dev_p = np.clip(y(dev) * 0.6 + rng.random((10, 2)) * 0.4, 0, 1)
    test_p = rng.random((10, 2))
    save_predictions(paths.predictions_file("logreg_512"), CODES, dev.note_id, dev_p, test.note_id, test_p)
    return root


def test_thresholds_never_move_with_test_labels(tmp_path):
    labels_a = [["I10"], [], ["E11.9"], ["I10", "E11.9"], [], ["I10"], [], [], ["E11.9"], []]
    labels_b = [["I10", "E11.9"]] * 10
    got = []
    for name, labels in (("a", labels_a), ("b", labels_b)):
        res = run_evidence(_fake_run(tmp_path / name, labels), n_bootstrap=5, top_k=3)
        got.append(res)
    assert got[0]["best_row"] == got[1]["best_row"] == "logreg_512"
    a, b = (r["review"] for r in got)
    assert got[0]["thresholds"].tolist() == got[1]["thresholds"].tolist()
    assert got[0]["auto_thresholds"].tolist() == got[1]["auto_thresholds"].tolist()
    assert len(b) == 0  # every test code is a label in run b: nothing can be suspected
    assert (tmp_path / "a" / "tables" / "subgroups.csv").exists() and (tmp_path / "a" / "figures" / "subgroups.png").exists()


def test_code_evidence_is_the_predict_evidence(tmp_path):
    """The metric scores exactly what `predict` returns: same spans for the same (note, code)."""
    words = "patient reports chest pain and history of hypertension diabetes reflux".split()
    rng = np.random.default_rng(0)
    tok = train_wordpiece([" ".join(rng.choice(words, 10)) for _ in range(40)], vocab_size=80, min_frequency=1,
                          out_dir=tmp_path / "tok")
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    config.icd_head, config.icd_codes, config.icd_max_len = "xml", CODES, 16
    torch.manual_seed(0)
    folder = tmp_path / "models" / "ehr_tiny_xml_16"
    BertForIcdCoding(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    texts = ["patient reports chest pain and history of hypertension " * 3, "diabetes and reflux"]
    out = predict.predict(folder, ["a", "b"], texts, top_k=2, device="cpu", progress=False)
    chosen = [[c["code"] for c in note["codes"]] for note in out["notes"]]
    found = predict.code_evidence(folder, texts, chosen, device="cpu")
    for note, items in zip(out["notes"], found):
        assert [c["evidence"] for c in note["codes"]] == [item["spans"] for item in items]
        for item in items:
            assert item["offsets"].shape == (len(item["scores"]), 2) and (item["scores"] >= 0).all()


def test_figures_draw_intervals_that_leave_the_point_outside(tmp_path):
    """a percentile interval of a small skewed group can exclude its point estimate: the figure still draws."""
    from bertxml_lib.reporting.evidence_report import subgroup_figure

    table = pd.DataFrame({"grouping": ["age", "age"], "group": ["<40", "40+"], "n_notes": [5, 9],
                          "micro_f1": [0.5, 0.6], "micro_f1_ci_low": [0.55, 0.4], "micro_f1_ci_high": [0.9, 0.7],
                          "micro_auc": [0.7, np.nan], "micro_auc_ci_low": [0.5, np.nan], "micro_auc_ci_high": [0.65, np.nan]})
    subgroup_figure(table, tmp_path / "subgroups.png", "logreg_512")
    assert (tmp_path / "subgroups.png").stat().st_size > 1000
