"""Notebook 01 — where raw notes and codes come from (`data.source`); the synthetic cohort is the default.

| source      | reads (parameters)                                   | labels          | split            |
|-------------|------------------------------------------------------|-----------------|------------------|
| `synthetic` | generated into `<out_dir>/raw/` (n_patients, n_codes)| ICD-10-CM       | by patient       |
| `csv`       | `data.notes`, `data.codes` (CSV, CSV.gz or Parquet)  | `icd_version`   | `split` column if present |
| `mimic3`    | `data.dir`: NOTEEVENTS, DIAGNOSES_ICD (.csv.gz)       | ICD-9-CM        | by patient       |
| `mimic4`    | `data.dir`: note/discharge, hosp/diagnoses_icd        | `icd_version`   | by patient       |
| `codiesp`   | `data.dir`: CodiEsp release, `data.language` en|es    | ICD-10 (CIE-10) | official         |
| `fhir`      | `data.dir`: FHIR R4 Bulk Data NDJSON and/or Bundles   | `icd_version`   | by patient       |

Real sources are only read; what was read and dropped goes to `<out_dir>/raw/source.json` (counts and
file hashes, never note text), written atomically once loading has succeeded.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.provenance import file_hash
from bertxml_lib.data import fhir, loaders, loaders_mimic
from bertxml_lib.data.synthetic import write_synthetic

SOURCES = ("synthetic", "csv", "mimic3", "mimic4", "codiesp", "fhir")
#: The ICD version of each real source's labels (None: chosen by data.icd_version).
SOURCE_ICD_VERSION = {"synthetic": 10, "csv": None, "mimic3": 9, "mimic4": None, "codiesp": 10, "fhir": None}


def load_source(source: str, out_dir: str | Path, *, seed: int, n_patients: int, n_codes: int, notes: str = "",
                codes: str = "", data_dir: str = "", icd_version: int = 10,
                language: str = "en", fhir_labels: str = "encounter", synthetic: dict | None = None,
                stream: bool = False) -> tuple[pd.DataFrame | Path, pd.DataFrame | Path]:
    """Raw notes (patient_id, note_id, note_date, note_type, text [, split]) and codes (note_id, code).

    The synthetic source is generated into `<out_dir>/raw/` (streamed to Parquet) and read back, or with
    `stream=True` returned as the two Parquet paths, for `cohort.build_cohort` to stream (a million notes
    never in memory at once). Real sources raise `validation.DataError` on bad input; notes carry a
    `split` column when the source fixes the split (a csv `split` column, CodiEsp's official split)."""
    paths = RunPaths(out_dir)
    if source == "synthetic":

        # `synthetic`: the generator's context knobs (`data.synthetic.*`); it also writes raw/truth.parquet.
        write_synthetic(paths.raw_dir, n_patients=n_patients, n_codes=n_codes, seed=seed, knobs=synthetic)
        notes_file, codes_file = paths.raw_dir / "notes.parquet", paths.raw_dir / "codes.parquet"
        if stream:
            return notes_file, codes_file
        return pd.read_parquet(notes_file), pd.read_parquet(codes_file)
    if source == "fhir" and stream:  # the notes stream from the export into raw/, never all in memory
        raw_notes, raw_codes, info = fhir.load_fhir(data_dir, icd_version, fhir_labels,
                                                    notes_out=paths.raw_dir / "fhir_notes.parquet")
    else:
        raw_notes, raw_codes, info = read_real_source(source, notes=notes, codes=codes, data_dir=data_dir,
                                                      icd_version=icd_version, language=language,
                                                      fhir_labels=fhir_labels)
    files = info.pop("files")
    info = {"source": source, **info, "code_pairs": len(raw_codes), "distinct_codes": int(raw_codes["code"].nunique()),
            "has_split": isinstance(raw_notes, pd.DataFrame) and "split" in raw_notes,
            "file_sha256": {f: file_hash(f) for f in files}}
    write_json(paths.raw_dir / "source.json", info)
    return raw_notes, raw_codes


def read_real_source(source: str, *, notes: str = "", codes: str = "", data_dir: str = "", icd_version: int = 10,
                     language: str = "en", fhir_labels: str = "encounter") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(notes, codes, info) of a real source; writes nothing."""

    if source == "csv":
        return loaders.load_csv_source(notes, codes, icd_version)
    if source == "mimic3":
        return loaders_mimic.load_mimic3(data_dir)
    if source == "mimic4":
        return loaders_mimic.load_mimic4(data_dir, icd_version)
    if source == "codiesp":
        return loaders.load_codiesp(data_dir, language)
    if source == "fhir":
        return fhir.load_fhir(data_dir, icd_version, fhir_labels)
    raise ValueError(f"data.source={source!r} is not supported; expected one of {SOURCES}")


def labels_icd_version(source: str, icd_version: int = 10) -> int:
    """The ICD version (9 or 10) of a source's codes, for normalising and describing them downstream."""
    if source not in SOURCE_ICD_VERSION:
        raise ValueError(f"data.source={source!r} is not supported; expected one of {SOURCES}")
    return SOURCE_ICD_VERSION[source] or icd_version
