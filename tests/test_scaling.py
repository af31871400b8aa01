"""Notebook 08's pure parts: nested training subsets, curve fits, crossings, intervals, the figure."""
import numpy as np
import pandas as pd
import pytest

from bertxml_lib.core.config import ConfigError
from bertxml_lib.evaluation import scaling
from bertxml_lib.reporting.scaling_report import scaling_figure
from conftest import assert_png_figure

PATIENTS = [f"p{i:03d}" for i in range(40)]


def test_subset_sizes_round_fractions_and_drop_duplicates():
    assert scaling.subset_sizes(40, [0.1, 0.25, 0.5, 1.0]) == [4, 10, 20, 40]
    assert scaling.subset_sizes(7, [0.01, 0.1, 1.0]) == [1, 7]  # 0.07 and 0.7 both round to 1
    with pytest.raises(ValueError, match="fractions"):
        scaling.subset_sizes(40, [0.0, 1.0])
    with pytest.raises(ValueError, match="fractions"):
        scaling.subset_sizes(40, [1.5])


def test_subsets_are_nested_seeded_and_independent_of_input_order():
    subsets = scaling.nested_subsets(PATIENTS * 3, [4, 10, 20, 40], seed=0)  # patients repeat: one per note
    assert [len(s) for s in subsets.values()] == [4, 10, 20, 40]
    sizes = sorted(subsets)
    for small, large in zip(sizes, sizes[1:]):
        assert set(subsets[small]) < set(subsets[large])
    assert set(subsets[40]) == set(PATIENTS)
    assert scaling.nested_subsets(PATIENTS[::-1], [10], seed=0)[10] == subsets[10]
    assert scaling.nested_subsets(PATIENTS, [10], seed=1)[10] != subsets[10]  # the seed picks the subsets
    with pytest.raises(ValueError, match="outside"):
        scaling.nested_subsets(PATIENTS, [41], seed=0)


def test_power_fit_recovers_known_parameters_from_exact_points():
    n = np.array([5, 10, 20, 50, 100, 200, 500])
    auc = 0.93 - 0.6 * n ** -0.45
    fit = scaling.fit_curve(n, auc)
    assert fit.form == scaling.POWER
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.93, 0.6, 0.45), rel=1e-4)
    assert fit.rmse < 1e-6 and fit.n_points == 7
    assert fit(1000) == pytest.approx(0.93 - 0.6 * 1000 ** -0.45, rel=1e-5)


def test_log_linear_fallback_for_a_flat_series_and_for_three_points():
    flat = scaling.fit_curve([4, 10, 20, 40], [0.7, 0.7, 0.7, 0.7])  # exponent unidentifiable
    assert flat.form == scaling.LOG_LINEAR and flat.b == pytest.approx(0.0, abs=1e-12)
    assert flat.a == pytest.approx(0.7)
    three = scaling.fit_curve([10, 100, 1000], [0.6, 0.7, 0.8])  # 3 points: no 3-parameter fit
    assert three.form == scaling.LOG_LINEAR
    assert three.b == pytest.approx(0.1 / np.log(10)) and three(100) == pytest.approx(0.7)
    assert np.isnan(three.c)
    with pytest.raises(ValueError, match="distinct"):
        scaling.fit_curve([10, 10], [0.6, 0.7])


def test_crossing_found_on_hand_made_curves():
    # BERT-XML: 0.95 - 1.0 n^-0.5; LogReg: 0.80 - 0.2 n^-0.5. Equal where 0.15 = 0.8 n^-0.5: n = (0.8/0.15)^2.
    xml = scaling.CurveFit(scaling.POWER, 0.95, 1.0, 0.5, 0.0, 4)
    logreg = scaling.CurveFit(scaling.POWER, 0.80, 0.2, 0.5, 0.0, 4)
    expected = (0.8 / 0.15) ** 2  # 28.44
    assert scaling.find_crossing(xml, logreg, 4, 400) == pytest.approx(expected, rel=1e-6)
    n, text = scaling.crossing_statement("BERT-XML", "LogReg", xml, logreg, 4, 400, "micro_auc")
    assert n == pytest.approx(expected, rel=1e-6)
    assert "about 28 training patients" in text and "BERT-XML is above LogReg beyond it" in text


def test_no_crossing_reported_when_the_curves_do_not_meet_in_range():
    xml = scaling.CurveFit(scaling.POWER, 0.95, 1.0, 0.5, 0.0, 4)
    logreg = scaling.CurveFit(scaling.POWER, 0.80, 0.2, 0.5, 0.0, 4)
    assert scaling.find_crossing(xml, logreg, 40, 400) is None  # crossing at 28 lies below the range
    n, text = scaling.crossing_statement("BERT-XML", "LogReg", xml, logreg, 40, 400, "micro_auc")
    assert n is None
    assert text == "micro_auc: the fitted curves do not cross within 40-400 training patients; BERT-XML stays above LogReg."
    below = scaling.CurveFit(scaling.LOG_LINEAR, 0.5, 0.01, float("nan"), 0.0, 4)
    assert scaling.crossing_statement("BERT-XML", "LogReg", below, logreg, 4, 400, "macro_auc")[1].endswith(
        "LogReg stays above BERT-XML.")


def _table() -> pd.DataFrame:
    """A scaling table whose XML and LogReg points lie exactly on the crossing curves above."""
    n = np.array([4, 10, 40, 100])
    rows = []
    for model, (a, b) in {"xml": (0.95, 1.0), "logreg": (0.80, 0.2), "prior": (0.6, 0.0)}.items():
        for k in n:
            micro = a - b * k ** -0.5
            rows.append({"train_fraction": k / 100, "n_train_patients": k, "n_train_notes": 3 * k, "model": model,
                         "micro_auc": micro, "micro_auc_ci_low": micro - 0.02, "micro_auc_ci_high": micro + 0.02,
                         "macro_auc": 0.5 if model == "prior" else micro - 0.1,
                         "macro_auc_ci_low": np.nan, "macro_auc_ci_high": np.nan})
    return pd.DataFrame(rows)


def test_fit_all_fits_every_model_and_finds_the_crossing(tmp_path):
    table = _table()
    fits, crossings = scaling.fit_all(table)
    assert sorted(fits) == sorted((m, k) for m in ("xml", "logreg", "prior") for k in scaling.AUC_METRICS)
    assert fits[("xml", "micro_auc")].form == scaling.POWER
    assert fits[("prior", "macro_auc")].form == scaling.LOG_LINEAR  # flat 0.5
    # macro = micro - 0.1 for both: the same crossing.
    assert crossings["crossing_train_patients"].to_numpy() == pytest.approx([(0.8 / 0.15) ** 2] * 2, rel=1e-3)
    out = scaling.fits_table(fits)
    assert list(out.columns) == ["model", "metric", "form", "a", "b", "c", "rmse", "n_points"] and len(out) == 6
    png = scaling_figure(table, fits, dict(zip(crossings["metric"], crossings["crossing_train_patients"])),
                         tmp_path / "figure_scaling.png", "test")
    assert_png_figure(png)


def test_fit_all_without_logreg_states_that_no_crossing_was_computed():
    fits, crossings = scaling.fit_all(_table().query("model != 'logreg'"))
    assert crossings["crossing_train_patients"].isna().all()
    assert crossings["statement"].str.contains("not computed").all()


def test_auc_with_intervals_on_a_hand_made_test_set():
    # Four notes of two patients, one code: scores rank both positives first -> AUC 1 on every resample
    # that holds both classes.
    y = np.array([[1], [0], [1], [0]], dtype=np.float32)
    probs = np.array([[0.9], [0.2], [0.8], [0.1]])
    out = scaling.auc_with_intervals(y, probs, ["a", "a", "b", "b"], n_bootstrap=20, seed=0)
    assert out["micro_auc"] == 1.0 and out["macro_auc"] == 1.0
    assert out["micro_auc_ci_low"] == 1.0 and out["micro_auc_ci_high"] == 1.0
    none = scaling.auc_with_intervals(y, probs, ["a", "a", "b", "b"], n_bootstrap=0, seed=0)
    assert np.isnan(none["macro_auc_ci_low"]) and list(none) == list(out)


def _tiny_run(root):
    """A hand-built run folder: 20 training, 4 dev and 4 test patients with two notes each; code A is written
    in the note ("chest pain") for patients whose number is even, code B for every third patient."""
    from bertxml_lib.core.atomic import write_json
    from bertxml_lib.core.paths import RunPaths

    rows = []
    for i in range(28):
        split = "train" if i < 20 else "dev" if i < 24 else "test"
        for k in range(2):
            labels = [c for c, on in (("A00.0", i % 2 == 0), ("B00.0", i % 3 == 0)) if on]
            words = (["chest pain"] if "A00.0" in labels else ["no complaints"]) + (
                ["cough fever"] if "B00.0" in labels else ["walks daily"])
            rows.append({"patient_id": f"p{i:02d}", "note_id": f"n{i:02d}_{k}", "note_date": pd.Timestamp("2020-01-01"),
                         "note_type": "progress", "text": f"visit {k}: " + " and ".join(words), "split": split,
                         "codes": labels, "labels": labels})
    paths = RunPaths(root)
    paths.cohort_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(paths.cohort_notes, index=False)
    write_json(paths.label_set, {"codes": ["A00.0", "B00.0"], "descriptions": {"A00.0": "a", "B00.0": "b"},
                                 "icd_version": 10, "train_counts": {"A00.0": 20, "B00.0": 14}, "min_train_count": 1})
    return root


def test_run_scaling_on_a_hand_built_run_folder(tmp_path):
    from bertxml_lib import stages

    out = _tiny_run(tmp_path / "run")
    res = stages.run_scaling(out, seed=0, encoder="tiny", train_fractions=[0.1, 0.25, 0.5, 1.0],
                             models=["prior", "oracle", "logreg"], max_len=64, epochs=1, batch_tokens=256, lr=1e-3,
                             head_lr=1e-2, warmup=0.1, weight_decay=0.01, eval_batch_size=8, max_tokens=512, C=1.0,
                             logreg_readings=["segments", "whole"], n_bootstrap=20)
    table = pd.read_csv(out / "tables" / "scaling.csv")
    assert res["sizes"] == [2, 5, 10, 20] and res["skipped"] == {"oracle": "no generator ground truth (real data source)"}
    assert table["n_train_patients"].tolist() == [2, 2, 5, 5, 10, 10, 20, 20]
    assert table["n_train_notes"].tolist() == [4, 4, 10, 10, 20, 20, 40, 40]  # two notes per patient
    assert table["model"].tolist() == ["prior", "logreg"] * 4
    prior = table[table["model"] == "prior"]
    assert (prior["macro_auc"] == 0.5).all()  # one score per code for every note
    full = table[(table["model"] == "logreg") & (table["n_train_patients"] == 20)].iloc[0]
    assert full["micro_auc"] == 1.0 and full["macro_auc"] == 1.0  # the words name the codes: a perfect ranking
    assert (table["micro_auc_ci_low"] <= table["micro_auc"] + 1e-12).all()
    assert (table["micro_auc"] <= table["micro_auc_ci_high"] + 1e-12).all()
    fits = pd.read_csv(out / "tables" / "scaling_fit.csv")
    assert set(fits["model"]) == {"prior", "logreg"}
    crossings = pd.read_csv(out / "tables" / "scaling_crossing.csv")
    assert crossings["statement"].str.contains("not computed").all()  # no BERT-XML row asked for
    assert_png_figure(out / "figures" / "figure_scaling.png")
    with pytest.raises(ConfigError, match="scaling.models"):
        stages.run_scaling(out, seed=0, encoder="tiny", train_fractions=[1.0], models=["rnn"], max_len=64, epochs=1,
                           batch_tokens=256, lr=1e-3, head_lr=1e-2, warmup=0.1, weight_decay=0.01, eval_batch_size=8,
                           max_tokens=512, C=1.0, logreg_readings=["segments"], n_bootstrap=0)


@pytest.mark.e2e
def test_scaling_outputs_of_the_ci_run(ci_run):
    out, _ = ci_run
    table = pd.read_csv(out / "tables" / "scaling.csv")
    sizes = sorted(table["n_train_patients"].unique())
    assert len(sizes) >= 4 and sizes[-1] >= 10 * sizes[0] * 0.9  # 0.1 .. 1.0 of the training patients
    assert {"prior", "oracle", "logreg", "xml", "cls"} == set(table["model"])
    assert table.groupby("model")["n_train_patients"].apply(sorted).map(tuple).nunique() == 1  # every model, every size
    for metric in ("micro_auc", "macro_auc"):
        ok = table[metric].notna()
        assert (table.loc[ok, f"{metric}_ci_low"] <= table.loc[ok, metric] + 1e-9).all()
        assert (table.loc[ok, metric] <= table.loc[ok, f"{metric}_ci_high"] + 1e-9).all()
    fits = pd.read_csv(out / "tables" / "scaling_fit.csv")
    assert {("xml", "micro_auc"), ("logreg", "micro_auc")} <= set(zip(fits["model"], fits["metric"]))
    crossings = pd.read_csv(out / "tables" / "scaling_crossing.csv")
    assert crossings["metric"].tolist() == ["micro_auc", "macro_auc"]
    assert crossings["statement"].str.contains("cross").all()
    assert_png_figure(out / "figures" / "figure_scaling.png")
