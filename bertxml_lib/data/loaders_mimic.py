"""Notebook 01 — MIMIC-III and MIMIC-IV from a local folder of the official gzipped CSVs.

* `mimic3`: NOTEEVENTS.csv.gz (ROW_ID, SUBJECT_ID, HADM_ID, CHARTDATE, CATEGORY, TEXT; ISERROR) and
  DIAGNOSES_ICD.csv.gz (SUBJECT_ID, HADM_ID, SEQ_NUM, ICD9_CODE): ICD-9-CM labels.
* `mimic4`: MIMIC-IV-Note note/discharge.csv.gz (note_id, subject_id, hadm_id, note_type, charttime, text)
  and MIMIC-IV hosp/diagnoses_icd.csv.gz (subject_id, hadm_id, seq_num, icd_code, icd_version); the
  labels are the codes of `data.icd_version` (9 or 10).

MIMIC codes diagnoses per admission, so a note's codes are its admission's codes. A note that cannot be
linked to an admission coded in the chosen ICD version (no HADM_ID, or an admission without such codes)
has unknown rather than absent labels: it is left out and counted in `info`, not kept as a negative.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from bertxml_lib.data.loaders import drop_unknown_notes, finish_codes, normalize_codes
from bertxml_lib.data.validation import (
    DataError,
    parse_dates,
    read_csv_table,
    require_nonempty,
    require_unique,
    require_values,
)

MIMIC3_NOTES = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CATEGORY", "TEXT")
MIMIC3_DIAGNOSES = ("SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE")
MIMIC4_NOTES = ("note_id", "subject_id", "hadm_id", "note_type", "charttime", "text")
MIMIC4_DIAGNOSES = ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")


def find_file(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of `candidates` (relative to `root`) that exists; a DataError listing them all otherwise."""
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    tried = ", ".join(str(root / rel) for rel in candidates)
    raise DataError(f"{root}: {what} not found (looked for {tried}); expected data.dir = a folder of the official files")


def _data_root(data_dir: str | Path, source: str) -> Path:
    root = Path(data_dir).expanduser()
    if not str(data_dir) or not root.is_dir():
        raise DataError(f"data.dir={str(data_dir)!r}: folder not found (expected data.dir = the local folder with the "
                        f"official {source} files)")
    return root


def _clean_id(values: pd.Series) -> pd.Series:
    """Ids as written by some exports ('167853.0') compare equal to '167853'."""
    return values.str.strip().str.replace(r"\.0$", "", regex=True)


def _admission_codes(diagnoses: pd.DataFrame, code_col: str, icd_version: int, path: Path) -> pd.DataFrame:
    """hadm_id, code (normalised), one row per pair, in SEQ_NUM order of the file."""
    diagnoses = diagnoses.assign(hadm_id=_clean_id(diagnoses["hadm_id"]))
    coded = normalize_codes(diagnoses.rename(columns={code_col: "code"}), icd_version, path)
    return coded[["hadm_id", "code"]].drop_duplicates()


def _link_notes(notes: pd.DataFrame, adm_codes: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Keep notes of coded admissions; every note gets all codes of its admission."""
    coded_adm = set(adm_codes["hadm_id"])
    linked = notes["hadm_id"].isin(coded_adm)
    info = {"notes_read": len(notes), "notes_without_admission": int((notes["hadm_id"] == "").sum()),
            "notes_of_uncoded_admissions": int((~linked & (notes["hadm_id"] != "")).sum())}
    notes = notes[linked].reset_index(drop=True)
    codes = notes[["note_id", "hadm_id"]].merge(adm_codes, on="hadm_id")
    codes, _ = drop_unknown_notes(codes, notes["note_id"], path)
    info["notes"] = len(notes)
    return notes.drop(columns="hadm_id"), finish_codes(codes), info


def load_mimic3(data_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """MIMIC-III v1.4 notes with their admissions' ICD-9-CM diagnosis codes.

    CATEGORY becomes note_type ('Discharge summary', 'Nursing/other', ...); notes flagged ISERROR=1 become
    note_type 'erroneous', so the paper's type filter (cohort.excluded_types) drops and counts them."""
    root = _data_root(data_dir, "MIMIC-III")
    notes_path = find_file(root, ("NOTEEVENTS.csv.gz", "NOTEEVENTS.csv"), "NOTEEVENTS")
    diag_path = find_file(root, ("DIAGNOSES_ICD.csv.gz", "DIAGNOSES_ICD.csv"), "DIAGNOSES_ICD")
    raw = read_csv_table(notes_path, MIMIC3_NOTES, ("ISERROR",), what="MIMIC-III NOTEEVENTS")
    require_nonempty(raw, "ROW_ID", notes_path)
    require_nonempty(raw, "SUBJECT_ID", notes_path)
    raw["ROW_ID"] = _clean_id(raw["ROW_ID"])
    require_unique(raw, "ROW_ID", notes_path)
    note_type = raw["CATEGORY"].str.strip()
    if "ISERROR" in raw:
        note_type = note_type.where(_clean_id(raw["ISERROR"]) != "1", "erroneous")
    notes = pd.DataFrame({
        "patient_id": _clean_id(raw["SUBJECT_ID"]),
        "note_id": raw["ROW_ID"],
        "note_date": parse_dates(raw["CHARTDATE"], notes_path, "CHARTDATE"),
        "note_type": note_type,
        "text": raw["TEXT"],
        "hadm_id": _clean_id(raw["HADM_ID"]),
    })
    diagnoses = read_csv_table(diag_path, MIMIC3_DIAGNOSES, what="MIMIC-III DIAGNOSES_ICD")
    require_nonempty(diagnoses, "HADM_ID", diag_path)
    adm_codes = _admission_codes(diagnoses.rename(columns={"HADM_ID": "hadm_id"}), "ICD9_CODE", 9, diag_path)
    notes, codes, info = _link_notes(notes, adm_codes, diag_path)
    return notes, codes, {**info, "icd_version": 9, "files": [str(notes_path), str(diag_path)]}


def load_mimic4(data_dir: str | Path, icd_version: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """MIMIC-IV-Note discharge summaries with their admissions' diagnosis codes of `icd_version`.

    `data.dir` may hold the files directly or in the official `note/` and `hosp/` sub-folders."""
    if icd_version not in (9, 10):
        raise DataError(f"data.icd_version={icd_version!r}: expected 9 or 10 for MIMIC-IV")
    root = _data_root(data_dir, "MIMIC-IV")
    notes_path = find_file(root, ("note/discharge.csv.gz", "discharge.csv.gz", "note/discharge.csv", "discharge.csv"),
                           "MIMIC-IV-Note discharge.csv.gz")
    diag_path = find_file(root, ("hosp/diagnoses_icd.csv.gz", "diagnoses_icd.csv.gz", "hosp/diagnoses_icd.csv",
                                 "diagnoses_icd.csv"), "MIMIC-IV hosp diagnoses_icd.csv.gz")
    raw = read_csv_table(notes_path, MIMIC4_NOTES, what="MIMIC-IV-Note discharge notes")
    require_nonempty(raw, "note_id", notes_path)
    require_nonempty(raw, "subject_id", notes_path)
    require_unique(raw, "note_id", notes_path)
    notes = pd.DataFrame({
        "patient_id": _clean_id(raw["subject_id"]),
        "note_id": raw["note_id"].str.strip(),
        "note_date": parse_dates(raw["charttime"], notes_path, "charttime"),
        "note_type": raw["note_type"].str.strip(),
        "text": raw["text"],
        "hadm_id": _clean_id(raw["hadm_id"]),
    })
    diagnoses = read_csv_table(diag_path, MIMIC4_DIAGNOSES, what="MIMIC-IV diagnoses_icd")
    require_nonempty(diagnoses, "hadm_id", diag_path)
    version = require_values(_clean_id(diagnoses["icd_version"]), ("9", "10"), diag_path, "icd_version")
    chosen = diagnoses[version == str(icd_version)]
    if chosen.empty:
        raise DataError(f"{diag_path}: no diagnosis rows with icd_version={icd_version}; expected some "
                        f"(found versions {sorted(set(version))}; set data.icd_version)")
    adm_codes = _admission_codes(chosen, "icd_code", icd_version, diag_path)
    notes, codes, info = _link_notes(notes, adm_codes, diag_path)
    return notes, codes, {**info, "icd_version": icd_version, "files": [str(notes_path), str(diag_path)]}
