"""`run_all.py --seeds 0 1 2`: the same profile once per seed, Table 2 as mean ± sd across seeds.

Each seed's run is a complete run folder (`<out>/seed_<s>/`, cached like any run); the seed changes
the synthetic cohort, the patient split, initialisations, masks and batch order. This module only
aggregates the finished `tables/table2.csv` files: per model, the mean and the sample standard
deviation (ddof=1) of every metric over the seeds where the model was run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from bertxml_lib.core.atomic import write_csv, write_json
from bertxml_lib.evaluation.metrics import METRICS

KEYS = ["model", "family", "encoder", "max_len"]


def seed_dir(out_dir: str | Path, seed: int) -> Path:
    """Where seed `seed`'s run of a multi-seed run lives."""
    return Path(out_dir) / f"seed_{seed}"


def aggregate_table2(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """`{seed: table2}` -> one row per model: `n_seeds, seeds, <metric>_mean, <metric>_sd` (sd NaN for one
    seed). Rows whose `status` is not "ok" (models not run) are left out; row order follows the first table."""
    if not tables:
        raise ValueError("aggregate_table2: no tables")
    long = pd.concat([t.assign(seed=s) for s, t in tables.items()], ignore_index=True)
    if "status" in long:
        long = long[long["status"].fillna("ok") == "ok"]
    long = long.assign(encoder=long["encoder"].astype(object).fillna(""))
    order = list(dict.fromkeys(long["model"]))
    grouped = long.groupby(KEYS, sort=False, dropna=False)
    out = grouped.agg(n_seeds=("seed", "size"), seeds=("seed", lambda s: " ".join(map(str, sorted(s)))))
    for metric in METRICS:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_sd"] = grouped[metric].std(ddof=1)
    out = out.reset_index()
    return out.sort_values("model", key=lambda m: m.map(order.index)).reset_index(drop=True)


def write_multiseed(out_dir: str | Path, seeds: Sequence[int]) -> Path:
    """Aggregate `<out>/seed_<s>/tables/table2.csv` into `<out>/tables/table2_seeds.csv` (+ a small manifest)."""
    missing = [s for s in seeds if not (seed_dir(out_dir, s) / "tables" / "table2.csv").exists()]
    if missing:
        raise FileNotFoundError(f"multi-seed: seeds {missing} have no tables/table2.csv under {out_dir}")
    table = aggregate_table2({s: pd.read_csv(seed_dir(out_dir, s) / "tables" / "table2.csv") for s in seeds})
    path = Path(out_dir) / "tables" / "table2_seeds.csv"
    write_csv(path, table)
    write_json(Path(out_dir) / "seeds_manifest.json",
               {"seeds": list(seeds), "runs": [str(seed_dir(out_dir, s)) for s in seeds], "table": str(path)})
    return path


def mean_sd_text(table: pd.DataFrame, metric: str, digits: int = 3) -> pd.Series:
    """'0.712 ± 0.015' per row (just the mean when only one seed ran)."""
    mean, sd = table[f"{metric}_mean"], table[f"{metric}_sd"]
    return pd.Series([f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}") for m, s in zip(mean, sd)],
                     index=table.index)
