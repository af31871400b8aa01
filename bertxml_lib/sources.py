"""Notebook 01 — where raw notes and codes come from (`data.source`); the synthetic cohort is the default."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .paths import RunPaths

SOURCES = ("synthetic",)


def load_source(source: str, out_dir: str | Path, *, seed: int, n_patients: int, n_codes: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw notes (patient_id, note_id, note_date, note_type, text) and codes (note_id, code).

    The synthetic source is generated into `<out_dir>/raw/` (streamed to Parquet) and read back."""
    paths = RunPaths(out_dir)
    if source == "synthetic":
        from .synthetic import write_synthetic

        write_synthetic(paths.raw_dir, n_patients=n_patients, n_codes=n_codes, seed=seed)
        notes = pd.read_parquet(paths.raw_dir / "notes.parquet")
        codes = pd.read_parquet(paths.raw_dir / "codes.parquet")
        return notes, codes
    raise ValueError(f"data.source={source!r} is not supported; expected one of {SOURCES}")
