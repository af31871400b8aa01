"""Multi-seed Table 2: mean ± sd per model across seeds, checked against hand-computed values."""
import math

import pandas as pd
import pytest

from bertxml_lib.evaluation import multiseed
from bertxml_lib.evaluation.metrics import METRICS


def _table(values: dict[str, float], status: dict[str, str] | None = None) -> pd.DataFrame:
    rows = []
    for model, v in values.items():
        family = model.split("_")[0]
        rows.append({"model": model, "family": family, "encoder": "", "max_len": 512,
                     **{m: v for m in METRICS}, "status": (status or {}).get(model, "ok")})
    return pd.DataFrame(rows)


def test_mean_and_sample_sd_per_model_across_seeds():
    tables = {0: _table({"logreg_512": 0.70, "cnn_512": 0.60}),
              1: _table({"logreg_512": 0.74, "cnn_512": 0.66}),
              2: _table({"logreg_512": 0.72}, )}
    agg = multiseed.aggregate_table2(tables).set_index("model")
    assert list(agg.index) == ["logreg_512", "cnn_512"]
    assert agg.loc["logreg_512", "n_seeds"] == 3 and agg.loc["logreg_512", "seeds"] == "0 1 2"
    assert agg.loc["logreg_512", "micro_auc_mean"] == pytest.approx(0.72)
    assert agg.loc["logreg_512", "micro_auc_sd"] == pytest.approx(0.02)  # sqrt((.02^2+.02^2+0)/2)
    assert agg.loc["cnn_512", "n_seeds"] == 2
    assert agg.loc["cnn_512", "map_sd"] == pytest.approx(math.sqrt(2 * 0.03 ** 2))


def test_not_run_rows_are_left_out_and_one_seed_has_no_sd():
    tables = {0: _table({"logreg_512": 0.7, "clinical_cls_512": float("nan")}, {"clinical_cls_512": "not run: x"})}
    agg = multiseed.aggregate_table2(tables)
    assert list(agg["model"]) == ["logreg_512"]
    assert pd.isna(agg.loc[0, "micro_auc_sd"])
    assert multiseed.mean_sd_text(agg, "micro_auc").tolist() == ["0.700"]


def test_write_multiseed_reads_each_seed_folder(tmp_path):
    for seed, v in ((0, 0.7), (1, 0.8)):
        folder = multiseed.seed_dir(tmp_path, seed) / "tables"
        folder.mkdir(parents=True)
        _table({"logreg_512": v}).to_csv(folder / "table2.csv", index=False)
    path = multiseed.write_multiseed(tmp_path, [0, 1])
    agg = pd.read_csv(path)
    assert agg.loc[0, "micro_auc_mean"] == pytest.approx(0.75)
    assert multiseed.mean_sd_text(agg, "micro_auc").tolist() == ["0.750 ± 0.071"]
    with pytest.raises(FileNotFoundError, match=r"seeds \[2\]"):
        multiseed.write_multiseed(tmp_path, [0, 2])
