"""Notebook 01 — real data in: the generic `csv` source (notes + codes tables, CSV or Parquet)
and the CLEF eHealth 2020 CodiEsp release, plus the code normalisation every source shares.

Every loader returns the raw-source contract of docs/DESIGN.md:
  notes: patient_id, note_id, note_date (datetime64[ns], NaT when unknown), note_type, text
         [+ split ('train'|'dev'|'test') when the source fixes it: a `split` column or an official split]
  codes: note_id, code (normalised: upper case, dotted; ICD-10-CM 'I25.10' or ICD-9-CM '401.9')
and a small `info` dict of counts (what was read, what was dropped and why) for `raw/source.json`.
Loaders only read; bad input raises `validation.DataError` before anything is written.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from bertxml_lib.data import icd
from bertxml_lib.data.icd9 import describe_icd9, normalize_icd9
from bertxml_lib.data.splits import SPLITS
from bertxml_lib.data.validation import (
    DataError,
    DataWarning,
    listing,
    parse_dates,
    read_csv_table,
    read_table,
    read_text_file,
    require_file,
    require_nonempty,
    require_unique,
    require_values,
)

NOTE_KINDS = {"patient_id": "id", "note_id": "id", "text": "str", "note_type": "str", "note_date": "date",
              "split": "str"}
NOTE_REQUIRED = ("patient_id", "note_id", "text")
CODE_KINDS = {"note_id": "id", "patient_id": "id", "note_date": "date", "code": "str"}
DEFAULT_NOTE_TYPE = "note"
NOTES_WHAT = ("a notes table with columns patient_id, note_id, text (optional note_type, note_date, split)")
CODES_WHAT = "a codes table with columns note_id, code (or patient_id, note_date, code)"

# ---------------------------------------------------------------------------------------------
# Codes: one normalised string per code, so 'I2510', 'i25.10' and 'I25.10' are one label
# ---------------------------------------------------------------------------------------------

def normalize_code(code: str, icd_version: int = 10) -> str:
    """The one comparable form of a code for `icd_version` 9 or 10."""
    if icd_version == 10:
        return icd.normalize_code(code)
    if icd_version == 9:
        return normalize_icd9(code)
    raise ValueError(f"data.icd_version must be 9 or 10, got {icd_version!r}")


def describe_code(code: str, icd_version: int = 10) -> str:
    """Official description of a code of either ICD version (the code itself when none is known)."""
    return icd.describe(code) if icd_version == 10 else describe_icd9(code)


def normalize_codes(codes: pd.DataFrame, icd_version: int, path: Path, column: str = "code") -> pd.DataFrame:
    """Normalise `codes[column]`; empty codes are dropped with a DataWarning, malformed ones are a DataError
    naming the data row. Each distinct string is normalised once (a million rows hold few distinct codes)."""
    raw = codes[column].astype(str).str.strip()
    empty = raw == ""
    if empty.any():
        warnings.warn(f"{path}: {int(empty.sum())} row(s) with an empty {column!r} dropped", DataWarning, stacklevel=2)
    mapping: dict[str, str] = {}
    for value in raw[~empty].unique():
        try:
            mapping[value] = normalize_code(value, icd_version)
        except ValueError as exc:
            # Index labels are the table's 0-based data rows (kept through filtering), hence + 1.
            row = int(raw.index[(raw == value).to_numpy()][0]) + 1
            raise DataError(f"{path}: column {column!r}, data row {row}: {exc} "
                            f"(data.icd_version={icd_version})") from None
    out = codes.loc[~empty].copy()
    out["code"] = raw[~empty].map(mapping)
    return out


def drop_unknown_notes(codes: pd.DataFrame, note_ids: pd.Series, path: Path) -> tuple[pd.DataFrame, int]:
    """Codes whose note_id is not among the notes are dropped, with one DataWarning giving the count."""
    known = codes["note_id"].isin(set(note_ids))
    n_unknown = int((~known).sum())
    if n_unknown:
        examples = listing(list(dict.fromkeys(codes.loc[~known, "note_id"].tolist())), show=3)
        warnings.warn(f"{path}: {n_unknown} code row(s) refer to note_ids that are not in the notes table "
                      f"(e.g. {examples}); dropped", DataWarning, stacklevel=2)
    return codes.loc[known, ["note_id", "code"]], n_unknown


def finish_codes(codes: pd.DataFrame) -> pd.DataFrame:
    """One row per (note_id, code), in a fixed order, so the same files give the same table."""
    out = codes[["note_id", "code"]].drop_duplicates().sort_values(["note_id", "code"], kind="stable")
    return out.reset_index(drop=True).astype({"note_id": str, "code": str})


# ---------------------------------------------------------------------------------------------
# data.source=csv: the generic notes + codes tables
# ---------------------------------------------------------------------------------------------

def load_notes_table(path: str | Path) -> pd.DataFrame:
    """The notes table in the raw contract (+ `split` when the file has one)."""
    path = Path(path)
    df = read_table(path, NOTE_KINDS, NOTE_REQUIRED, what=NOTES_WHAT)
    for col in ("patient_id", "note_id"):
        require_nonempty(df, col, path)
    require_unique(df, "note_id", path)
    notes = pd.DataFrame({
        "patient_id": df["patient_id"].astype(str),
        "note_id": df["note_id"].astype(str),
        "note_date": (parse_dates(df["note_date"], path, "note_date") if "note_date" in df
                      else pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")),
        "note_type": (df["note_type"].astype(str).str.strip().replace("", DEFAULT_NOTE_TYPE) if "note_type" in df
                      else DEFAULT_NOTE_TYPE),
        "text": df["text"].astype(str),
    })
    if "split" in df:
        notes["split"] = require_values(df["split"], SPLITS, path, "split")
    return notes.reset_index(drop=True)


def load_codes_table(path: str | Path, notes: pd.DataFrame, icd_version: int = 10) -> tuple[pd.DataFrame, dict]:
    """Codes keyed by note_id, or by (patient_id, note_date), which then go to every note of that patient
    written on that date. Codes for unknown notes are dropped with a warning."""
    path = Path(path)
    probe = read_table(path, CODE_KINDS, ("code",), what=CODES_WHAT)
    if "note_id" in probe:
        require_nonempty(probe, "note_id", path)
        codes = probe[["note_id", "code"]]
    elif {"patient_id", "note_date"} <= set(probe.columns):
        codes = _codes_by_patient_date(probe, notes, path)
    else:
        raise DataError(f"{path}: missing key column(s): expected note_id, or patient_id and note_date, "
                        f"beside code; found {list(probe.columns)}")
    n_rows = len(codes)
    codes = normalize_codes(codes, icd_version, path)
    codes, n_unknown = drop_unknown_notes(codes, notes["note_id"], path)
    return finish_codes(codes), {"code_rows": n_rows, "code_rows_unknown_note": n_unknown}


def _codes_by_patient_date(probe: pd.DataFrame, notes: pd.DataFrame, path: Path) -> pd.DataFrame:
    if notes["note_date"].isna().all():
        raise DataError(f"{path}: codes are keyed by patient_id and note_date, but the notes table has no note dates; "
                        "expected a note_date column in the notes table (or key the codes by note_id)")
    require_nonempty(probe, "patient_id", path)
    keyed = probe.assign(note_date=parse_dates(probe["note_date"], path, "note_date"), row=range(len(probe)))
    # Compare by calendar day: a code dated 2020-01-05 belongs to every note written that day.
    keyed["day"] = keyed["note_date"].dt.normalize()
    days = notes[["patient_id", "note_id"]].assign(day=notes["note_date"].dt.normalize())
    merged = keyed.merge(days, on=["patient_id", "day"], how="left")
    # Rows with no matching note keep a placeholder id that drop_unknown_notes counts and drops.
    merged["note_id"] = merged["note_id"].where(merged["note_id"].notna(),
                                                "(" + merged["patient_id"] + " " + merged["note_date"].astype(str) + ")")
    return merged.sort_values("row", kind="stable").set_index("row")[["note_id", "code"]]


def load_csv_source(notes_path: str | Path, codes_path: str | Path, icd_version: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """data.source=csv: `data.notes` and `data.codes` (CSV, CSV.gz or Parquet)."""
    if not str(notes_path) or not str(codes_path):
        raise DataError("data.source=csv needs data.notes=PATH and data.codes=PATH "
                        f"(got data.notes={str(notes_path)!r}, data.codes={str(codes_path)!r})")
    notes = load_notes_table(notes_path)
    codes, info = load_codes_table(codes_path, notes, icd_version)
    return notes, codes, {"notes": len(notes), **info, "files": [str(notes_path), str(codes_path)]}


# ---------------------------------------------------------------------------------------------
# data.source=codiesp: CLEF eHealth 2020 CodiEsp (train/dev/test folders, <split>D.tsv, one .txt per document)
# ---------------------------------------------------------------------------------------------

CODIESP_TEXT_DIRS = {"en": "text_files_en", "es": "text_files"}


def load_codiesp(data_dir: str | Path, language: str = "en") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The CodiEsp-D task: <dir>/<split>/<text dir>/<doc>.txt and <dir>/<split>/<split>D.tsv (doc id, code;
    tab-separated, no header). The official split is kept as `split`. A document absent from its split's
    TSV is one of the unannotated background documents of the test release and is left out."""
    root = Path(data_dir).expanduser()
    if language not in CODIESP_TEXT_DIRS:
        raise DataError(f"data.language={language!r}: expected one of {sorted(CODIESP_TEXT_DIRS)} for CodiEsp")
    if not root.is_dir():
        raise DataError(f"{root}: CodiEsp folder not found (expected data.dir = the release folder holding "
                        "train/, dev/ and test/)")
    notes_parts, code_parts, info = [], [], {"background_documents": 0, "code_rows_unknown_note": 0}
    for split in SPLITS:
        tsv = require_file(root / split / f"{split}D.tsv", f"the CodiEsp {split} diagnosis codes (doc id<TAB>code)")
        text_dir = root / split / CODIESP_TEXT_DIRS[language]
        if not text_dir.is_dir():
            raise DataError(f"{text_dir}: folder not found (expected the {split} documents as <doc id>.txt, "
                            f"data.language={language!r})")
        codes = read_csv_table(tsv, (), what=f"CodiEsp {split} codes", sep="\t", names=["note_id", "code"])
        require_nonempty(codes, "note_id", tsv)
        files = sorted(text_dir.glob("*.txt"))
        coded = set(codes["note_id"])
        kept = [f for f in files if f.stem in coded]
        info["background_documents"] += len(files) - len(kept)
        notes = pd.DataFrame({"note_id": [f.stem for f in kept], "text": [read_text_file(f) for f in kept]})
        notes["split"] = split
        codes = normalize_codes(codes, 10, tsv)
        codes, n_unknown = drop_unknown_notes(codes, notes["note_id"], tsv)
        info["code_rows_unknown_note"] += n_unknown
        notes_parts.append(notes)
        code_parts.append(codes)
    notes = pd.concat(notes_parts, ignore_index=True)
    require_unique(notes, "note_id", root)
    notes = pd.DataFrame({
        "patient_id": notes["note_id"],  # one clinical case report per patient
        "note_id": notes["note_id"],
        "note_date": pd.Series(pd.NaT, index=notes.index, dtype="datetime64[ns]"),
        "note_type": "clinical_case",
        "text": notes["text"],
        "split": notes["split"],
    })
    codes = finish_codes(pd.concat(code_parts, ignore_index=True))
    return notes, codes, {"notes": len(notes), **info, "language": language, "files": [str(root)]}


# ---------------------------------------------------------------------------------------------
# data.evidence: annotated evidence spans of a real source (CodiEsp-X format), for notebook 09
# ---------------------------------------------------------------------------------------------

EVIDENCE_WHAT = ("an evidence table with columns note_id, code, spans (character offsets 'start end' into the "
                 "note text, half-open; several pairs separated by ';')")
#: The ground-truth interface notebook 09 scores against (the synthetic generator's `TRUTH_COLUMNS`).
EVIDENCE_COLUMNS = ["note_id", "code", "kind", "part", "form", "start", "end"]


def load_evidence_table(path: str | Path, notes: pd.DataFrame, icd_version: int = 10) -> pd.DataFrame:
    """`data.evidence` as ground truth rows `EVIDENCE_COLUMNS` (kind `evidenced`, one row per span piece)
    checked against `notes` (note_id, text — the texts the offsets index, as the cohort keeps them).

    Codes are normalised like the codes table; rows of notes not in `notes` are dropped (another split or
    a note the cohort filtered out); empty pieces (start == end, three in CodiEsp-X) hold no text and are
    skipped; a span outside its note's text, or with start > end, is a DataError naming the data row."""
    path = Path(path)
    df = read_csv_table(path, ("note_id", "code", "spans"), what=EVIDENCE_WHAT)
    require_nonempty(df, "note_id", path)
    df = normalize_codes(df, icd_version, path)
    length = dict(zip(notes["note_id"].astype(str), notes["text"].str.len()))
    rows = []
    for row, (note_id, code, spans) in enumerate(zip(df["note_id"], df["code"], df["spans"]), start=1):
        if note_id not in length:
            continue
        for piece in filter(None, (p.strip() for p in str(spans).split(";"))):
            parts = piece.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise DataError(f"{path}: column 'spans', data row {row}: {piece!r} is not 'start end' "
                                f"(two non-negative integers)")
            start, end = int(parts[0]), int(parts[1])
            if not start <= end <= length[note_id]:
                raise DataError(f"{path}: column 'spans', data row {row}: span {start}-{end} of note {note_id!r} "
                                f"is not inside its text of {length[note_id]} characters (need start <= end <= length)")
            if start == end:
                continue
            rows.append((note_id, code, "evidenced", "phrase", "annotated", start, end))
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS).astype({"start": "int64", "end": "int64"})
