"""Notebook 01 — cohort building (paper 4.1): filters, patient-level split, chronic imputation, label set."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import read_json, write_json, write_parquet
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data import icd
from bertxml_lib.data.cohort_stream import build_cohort_streaming
from bertxml_lib.data.loaders import describe_code, normalize_code
from bertxml_lib.data.splits import SPLITS, assign_splits, split_of_patient  # noqa: F401  (re-exported: cohort rules of paper 4.1)

NOTE_COLUMNS = ["patient_id", "note_id", "note_date", "note_type", "text"]


# ---------------------------------------------------------------------------------------------
# Rules of paper 4.1, each a small pure function on DataFrames so tests can check it by hand.
# ---------------------------------------------------------------------------------------------

def filter_notes(notes: pd.DataFrame, min_chars: int, excluded_types: Sequence[str]) -> tuple[pd.DataFrame, dict]:
    """Drop erroneous/student/miscellaneous notes and notes under `min_chars` characters.

    Returns the kept notes and a count of what each rule dropped (type rule applied first).
    """
    excluded = {t.lower() for t in excluded_types}
    by_type = notes["note_type"].str.lower().isin(excluded)
    too_short = ~by_type & (notes["text"].str.strip().str.len() < min_chars)
    kept = notes[~by_type & ~too_short].reset_index(drop=True)
    return kept, {"excluded_type": int(by_type.sum()), "too_short": int(too_short.sum()), "kept": len(kept)}


def impute_chronic(notes: pd.DataFrame, codes: pd.DataFrame, min_count: int = 2,
                   is_chronic: Callable[[str], bool] = icd.is_chronic) -> pd.DataFrame:
    """Paper 4.1: if a chronic code is observed `min_count` (two) times in a patient's records, it is
    imputed on every note of that patient dated on or after its earliest occurrence.

    `notes` has patient_id, note_id, note_date; `codes` has note_id, code. Returns the codes table with
    imputed rows added (column `imputed` marks them), one row per (note_id, code). `is_chronic` says
    which codes are chronic (default: the ICD-10-CM rule of `icd.is_chronic`).
    """
    coded = codes.merge(notes[["note_id", "patient_id", "note_date"]], on="note_id", how="inner")
    coded = coded.drop_duplicates(["note_id", "code"])
    chronic = coded[coded["code"].map(is_chronic).astype(bool)]  # astype: an empty map is not a mask
    stats = chronic.groupby(["patient_id", "code"])["note_date"].agg(["size", "min"]).reset_index()
    stats = stats[stats["size"] >= min_count]
    onset = stats.rename(columns={"min": "onset"})[["patient_id", "code", "onset"]]
    carried = notes[["patient_id", "note_id", "note_date"]].merge(onset, on="patient_id")
    carried = carried[carried["note_date"] >= carried["onset"]][["note_id", "code"]]
    out = pd.concat([coded[["note_id", "code"]].assign(imputed=False), carried.assign(imputed=True)])
    # Keep the observed row when a code is both observed and imputed on a note.
    out = out.sort_values(["note_id", "code", "imputed"]).drop_duplicates(["note_id", "code"])
    return out.reset_index(drop=True)


def build_label_set(codes: pd.DataFrame, train_note_ids: set[str], min_train_count: int) -> tuple[list[str], dict[str, int]]:
    """Codes with at least `min_train_count` training notes (paper: >1,000 -> 2,292 codes).

    Counted on the training split only, so the label set never depends on dev/test."""
    train = codes[codes["note_id"].isin(train_note_ids)]
    counts = train.groupby("code")["note_id"].nunique()
    kept = counts[counts >= min_train_count]
    order = sorted(kept.index, key=lambda c: (-int(kept[c]), c))
    return order, {c: int(kept[c]) for c in order}


# ---------------------------------------------------------------------------------------------
# The stage: raw source -> cohort/notes.parquet + label_set.json + stats.json
# ---------------------------------------------------------------------------------------------

def build_cohort(
    raw_notes: pd.DataFrame | str | Path,
    raw_codes: pd.DataFrame | str | Path,
    out_dir: str | Path,
    *,
    seed: int,
    min_chars: int,
    excluded_types: Sequence[str],
    split_fractions: Sequence[float],
    chronic_min_count: int,
    min_train_count: int,
    icd_version: int = 10,
) -> dict:
    """Apply every rule of paper 4.1 and write the cohort. Returns the statistics dictionary.

    `raw_notes` / `raw_codes` are DataFrames (real sources) or paths of Parquet files (the synthetic
    source): the cohort is built in two streaming passes (`cohort_stream`), so note texts of a Parquet
    source are never all in memory; the output equals `build_cohort_in_memory`'s (tested).
    `icd_version` 9 or 10 names the labels' coding system: codes are normalised and described with it,
    and chronic imputation (defined on ICD-10-CM chapters) is skipped for ICD-9 labels."""

    return build_cohort_streaming(raw_notes, raw_codes, out_dir, seed=seed, min_chars=min_chars,
                                  excluded_types=excluded_types, split_fractions=split_fractions,
                                  chronic_min_count=chronic_min_count, min_train_count=min_train_count,
                                  icd_version=icd_version)


def build_cohort_in_memory(
    raw_notes: pd.DataFrame,
    raw_codes: pd.DataFrame,
    out_dir: str | Path,
    *,
    seed: int,
    min_chars: int,
    excluded_types: Sequence[str],
    split_fractions: Sequence[float],
    chronic_min_count: int,
    min_train_count: int,
    icd_version: int = 10,
) -> dict:
    """The reference implementation of `build_cohort` on DataFrames, every rule a pandas expression over
    all notes at once (texts included). Kept for the parity tests of the streaming build; not used by
    the pipeline."""

    paths = RunPaths(out_dir)
    raw_codes = raw_codes.assign(code=raw_codes["code"].map(lambda c: normalize_code(c, icd_version)))
    notes, dropped = filter_notes(raw_notes, min_chars, excluded_types)
    given = "split" in notes.columns  # a source may fix the split (a csv `split` column, CodiEsp's official one)
    notes = notes.assign(split=notes["split"] if given else assign_splits(notes, seed, split_fractions))
    for name in SPLITS:
        if not (notes["split"] == name).any():
            hint = "the source's split column assigns none" if given else "use more patients"
            raise ValueError(f"cohort: the {name} split has no notes ({len(notes)} notes in all); {hint}")
    # The chronic rule is defined on ICD-10-CM; ICD-9 labels are used as recorded (nothing imputed).
    codes = impute_chronic(notes, raw_codes, chronic_min_count,
                           icd.is_chronic if icd_version == 10 else (lambda code: False))
    train_ids = set(notes.loc[notes["split"] == "train", "note_id"])
    label_codes, train_counts = build_label_set(codes, train_ids, min_train_count)
    if not label_codes:
        raise ValueError(
            f"cohort: no code has at least cohort.min_train_count={min_train_count} training notes; "
            f"lower cohort.min_train_count (most frequent code has "
            f"{codes[codes['note_id'].isin(train_ids)]['code'].value_counts().max()} notes)"
        )
    in_scope = set(label_codes)
    per_note = codes.groupby("note_id")["code"].agg(sorted)
    all_codes = notes["note_id"].map(per_note).apply(lambda v: v if isinstance(v, list) else [])
    notes = notes.assign(codes=all_codes, labels=all_codes.map(lambda cs: [c for c in cs if c in in_scope]))
    notes = notes.sort_values(["patient_id", "note_date", "note_id"]).reset_index(drop=True)

    write_parquet(paths.cohort_notes, notes)
    descriptions = {c: describe_code(c, icd_version) for c in label_codes}
    write_json(paths.label_set, {
        "codes": label_codes, "descriptions": descriptions, "icd_version": icd_version,
        "train_counts": train_counts, "min_train_count": min_train_count,
    })
    stats = cohort_statistics(notes, codes, dropped, label_codes)
    stats["split_hash"] = split_hash(notes)
    stats["split_source"] = "given" if given else "patient_hash"
    stats["patients_in_several_splits"] = int((notes.groupby("patient_id")["split"].nunique() > 1).sum())
    write_json(paths.cohort_dir / "stats.json", stats)
    return stats


def split_hash(notes: pd.DataFrame) -> str:
    """A fingerprint of which note is in which split (recorded in the run manifest)."""
    h = hashlib.sha256()
    for nid, split in sorted(zip(notes["note_id"], notes["split"])):
        h.update(f"{nid}:{split}\n".encode())
    return h.hexdigest()[:16]


def cohort_statistics(notes: pd.DataFrame, codes: pd.DataFrame, dropped: dict, label_codes: list[str]) -> dict:
    """The numbers notebook 01 sets beside the paper's (4.1)."""
    words = notes["text"].str.split().str.len()
    n_labels = notes["labels"].str.len()
    train = notes["split"] == "train"
    return {
        "notes": int(len(notes)),
        "patients": int(notes["patient_id"].nunique()),
        "dropped": dropped,
        "split_notes": {s: int((notes["split"] == s).sum()) for s in SPLITS},
        "split_patients": {s: int(notes.loc[notes["split"] == s, "patient_id"].nunique()) for s in SPLITS},
        "median_words": float(words.median()),
        "p90_words": float(words.quantile(0.9)),
        "distinct_codes": int(codes["code"].nunique()),
        "label_set_size": len(label_codes),
        "imputed_code_rows": int(codes["imputed"].sum()),
        "codes_per_note_train": float(notes.loc[train, "codes"].str.len().mean()),
        "labels_per_note_train": float(n_labels[train].mean()),
        "notes_without_labels": float((n_labels == 0).mean()),
        "note_type_share": {k: float(v) for k, v in notes["note_type"].value_counts(normalize=True).round(4).items()},
    }


# ---------------------------------------------------------------------------------------------
# Reading the cohort back (every later notebook starts here)
# ---------------------------------------------------------------------------------------------

@dataclass
class Cohort:
    notes: pd.DataFrame
    codes: list[str]
    descriptions: dict[str, str]
    train_counts: dict[str, int]
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {c: j for j, c in enumerate(self.codes)}

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.notes[self.notes["split"] == name].reset_index(drop=True)

    def labels(self, name: str) -> np.ndarray:
        """Multi-hot labels (n_notes, L) in label-set order for one split."""
        return self.label_matrix(self.split(name))

    def label_matrix(self, notes: pd.DataFrame) -> np.ndarray:
        y = np.zeros((len(notes), len(self.codes)), dtype=np.float32)
        for i, labels in enumerate(notes["labels"]):
            for c in labels:
                y[i, self._index[c]] = 1.0
        return y


def load_cohort(out_dir: str | Path) -> Cohort:
    paths = RunPaths(out_dir)
    if not paths.cohort_notes.exists():
        raise FileNotFoundError(f"{paths.cohort_notes}: no cohort yet; run notebook 01_cohort first")
    notes = pd.read_parquet(paths.cohort_notes)
    notes["codes"] = notes["codes"].map(list)
    notes["labels"] = notes["labels"].map(list)
    meta = read_json(paths.label_set)
    return Cohort(notes, list(meta["codes"]), dict(meta["descriptions"]), dict(meta["train_counts"]))
