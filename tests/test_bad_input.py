"""Bad input is a DataError naming the file, the row or column, and what was expected; nothing is
written when loading fails."""
from __future__ import annotations

import gzip

import pandas as pd
import pytest

from bertxml_lib.data import loaders, loaders_mimic, sources
from bertxml_lib.data.validation import DataError, DataWarning, first_invalid_utf8

TEXT = "Patient seen for follow up; plan discussed at length with the patient today."
HEADER = "patient_id,note_id,text\n"


@pytest.fixture
def codes_csv(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("note_id,code\nn1,I10\n")
    return path


def load(notes_path, codes_path):
    return loaders.load_csv_source(notes_path, codes_path)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_missing_file(tmp_path, codes_csv):
    with pytest.raises(DataError, match=r"nope\.csv: file not found \(expected a notes table with columns patient_id"):
        load(tmp_path / "nope.csv", codes_csv)


def test_missing_required_column(tmp_path, codes_csv):
    (tmp_path / "n.csv").write_text(f"patient_id,note_id,body\np1,n1,{TEXT}\n")
    with pytest.raises(DataError, match=r"n\.csv: missing required column\(s\) 'text'.*found \['patient_id', 'note_id', 'body'\]"):
        load(tmp_path / "n.csv", codes_csv)


@pytest.mark.parametrize("content,message", [("", "the file is empty"), (HEADER, "the table has a header but no data rows")])
def test_empty_table(tmp_path, codes_csv, content, message):
    (tmp_path / "n.csv").write_text(content)
    with pytest.raises(DataError, match=rf"n\.csv: {message}; expected a notes table"):
        load(tmp_path / "n.csv", codes_csv)


def test_bytes_that_are_not_utf8_name_the_line_and_byte_offset(tmp_path, codes_csv):
    good = (HEADER + f"p1,n1,{TEXT}\n").encode()
    (tmp_path / "n.csv").write_bytes(good + b"p2,n2,caf\xe9 latin-1\n")
    offset = len(good) + len(b"p2,n2,caf")  # hand-counted: the 0xe9 byte
    with pytest.raises(DataError, match=rf"n\.csv: not valid UTF-8 text at line 3, byte offset {offset} \(bytes e9\); expected UTF-8"):
        load(tmp_path / "n.csv", codes_csv)


def test_utf8_scan_across_chunk_boundaries_and_gzip(tmp_path):
    text = ("é" * 10 + "\n").encode() * 3  # two-byte characters cut by a 7-byte chunk are fine
    (tmp_path / "ok.txt").write_bytes(text)
    assert first_invalid_utf8(tmp_path / "ok.txt", chunk_bytes=7) is None
    with gzip.open(tmp_path / "bad.csv.gz", "wb") as fh:
        fh.write(text + b"x\xff")
    assert first_invalid_utf8(tmp_path / "bad.csv.gz", chunk_bytes=7) == (4, len(text) + 1, b"\xff")


def test_duplicate_note_ids_are_named(tmp_path, codes_csv):
    rows = "".join(f"p1,{nid},{TEXT}\n" for nid in ("n1", "n2", "n1", "n3", "n3", "n4"))
    (tmp_path / "n.csv").write_text(HEADER + rows)
    with pytest.raises(DataError, match=r"n\.csv: duplicate note_id value\(s\) 'n1', 'n3' \(2 distinct"):
        load(tmp_path / "n.csv", codes_csv)


def test_unterminated_quote_names_the_row(tmp_path, codes_csv):
    (tmp_path / "n.csv").write_text(HEADER + f"p1,n1,{TEXT}\np1,n2,\"{TEXT}\np1,n3,{TEXT}\n")
    with pytest.raises(DataError, match=r"n\.csv: unterminated quote: the quoted field opening in data row 2 never closes"):
        load(tmp_path / "n.csv", codes_csv)


def test_codes_for_unknown_notes_warn_with_a_count_and_are_dropped(tmp_path):
    (tmp_path / "n.csv").write_text(HEADER + f"p1,n1,{TEXT}\n")
    (tmp_path / "c.csv").write_text("note_id,code\nn1,I10\nghost,E11.9\nghost,I10\nother,I10\n")
    with pytest.warns(DataWarning, match=r"c\.csv: 3 code row\(s\) refer to note_ids that are not in the notes table \(e\.g\. 'ghost', 'other'\)"):
        _, codes, info = load(tmp_path / "n.csv", tmp_path / "c.csv")
    assert codes.values.tolist() == [["n1", "I10"]] and info["code_rows_unknown_note"] == 3


def test_parquet_column_of_the_wrong_type(tmp_path, codes_csv):
    pd.DataFrame({"patient_id": ["p1"], "note_id": ["n1"], "text": [12345]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"n\.parquet: column 'text' has Parquet type int64; expected string"):
        load(tmp_path / "n.parquet", codes_csv)


def test_file_that_is_not_parquet(tmp_path, codes_csv):
    (tmp_path / "n.parquet").write_text(HEADER)
    with pytest.raises(DataError, match=r"n\.parquet: not a readable Parquet file"):
        load(tmp_path / "n.parquet", codes_csv)


@pytest.mark.parametrize("column,value,message", [
    ("split", "validation", r"column 'split' has value\(s\) 'validation' in data row\(s\) 1; expected one of \['train', 'dev', 'test'\]"),
    ("note_date", "05/01/2020", r"column 'note_date' has unparseable date\(s\) '05/01/2020' in data row\(s\) 1; expected ISO 8601"),
])
def test_bad_values_name_column_and_row(tmp_path, codes_csv, column, value, message):
    (tmp_path / "n.csv").write_text(f"patient_id,note_id,text,{column}\np1,n1,{TEXT},{value}\n")
    with pytest.raises(DataError, match=message):
        load(tmp_path / "n.csv", codes_csv)


def test_malformed_code_names_the_row(tmp_path):
    (tmp_path / "n.csv").write_text(HEADER + f"p1,n1,{TEXT}\n")
    (tmp_path / "c.csv").write_text("note_id,code\nn1,I10\nn1,12-X\n")
    with pytest.raises(DataError, match=r"c\.csv: column 'code', data row 2: not an ICD-10-CM code: '12-X'"):
        load(tmp_path / "n.csv", tmp_path / "c.csv")


def test_csv_source_needs_both_paths():
    with pytest.raises(DataError, match="data.source=csv needs data.notes=PATH and data.codes=PATH"):
        loaders.load_csv_source("", "")


def test_mimic_folder_missing_or_incomplete(tmp_path):
    with pytest.raises(DataError, match=r"data.dir='.*absent': folder not found"):
        loaders_mimic.load_mimic3(tmp_path / "absent")
    with pytest.raises(DataError, match=r"NOTEEVENTS not found \(looked for .*NOTEEVENTS\.csv\.gz"):
        loaders_mimic.load_mimic3(tmp_path)


def test_mimic_gz_missing_column(tmp_path):
    for name, header in (("NOTEEVENTS", "ROW_ID,SUBJECT_ID,HADM_ID,CHARTDATE,CATEGORY,NOTE_TEXT\n1,2,3,2150-01-01,ECG,x\n"),
                         ("DIAGNOSES_ICD", "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n1,2,3,1,4019\n")):
        with gzip.open(tmp_path / f"{name}.csv.gz", "wt") as fh:
            fh.write(header)
    with pytest.raises(DataError, match=r"NOTEEVENTS\.csv\.gz: missing required column\(s\) 'TEXT' for MIMIC-III NOTEEVENTS"):
        loaders_mimic.load_mimic3(tmp_path)


def test_codiesp_text_file_that_is_not_utf8(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / split / "text_files_en").mkdir(parents=True)
        (tmp_path / split / "text_files_en" / f"{split}1.txt").write_text("Chest pain.\n")
        (tmp_path / split / f"{split}D.tsv").write_text(f"{split}1\tr52\n")
    (tmp_path / "dev" / "text_files_en" / "dev1.txt").write_bytes(b"Chest\npain \x93quoted\x94.\n")
    with pytest.raises(DataError, match=r"dev1\.txt: not valid UTF-8 text at line 2, byte offset 11 \(bytes 93\)"):
        loaders.load_codiesp(tmp_path, "en")


def test_failed_load_writes_nothing(tmp_path, codes_csv):
    (tmp_path / "n.csv").write_text(HEADER + f"p1,n1,{TEXT}\np1,n1,{TEXT}\n")
    out = tmp_path / "run"
    with pytest.raises(DataError, match="duplicate note_id"):
        sources.load_source("csv", out, seed=0, n_patients=0, n_codes=0, notes=str(tmp_path / "n.csv"),
                            codes=str(codes_csv))
    assert not out.exists() or not any(out.rglob("*"))


@pytest.mark.parametrize("column,values,expected", [
    ("code", [4019], "string"),  # ICD-9 codes stored as integers have already lost their leading zeros
    ("note_id", [1.5], "string or integer"),
])
def test_parquet_codes_column_of_the_wrong_type(tmp_path, column, values, expected):
    (tmp_path / "n.csv").write_text(HEADER + f"p1,n1,{TEXT}\n")
    pd.DataFrame({"note_id": ["n1"], "code": ["I10"]} | {column: values}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(DataError, match=rf"c\.parquet: column '{column}' has Parquet type (double|int64); expected {expected}"):
        load(tmp_path / "n.csv", tmp_path / "c.parquet")


def test_parquet_date_column_of_the_wrong_type(tmp_path, codes_csv):
    pd.DataFrame({"patient_id": ["p1"], "note_id": ["n1"], "text": [TEXT], "note_date": [3.5]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"n\.parquet: column 'note_date' has Parquet type double; expected timestamp, date or ISO 8601 string"):
        load(tmp_path / "n.parquet", codes_csv)


def _cohort_from_csv(tmp_path, splits=None, min_train_count=1):
    """stages.run_cohort (notebook 01) on a 40-note csv source; `splits` becomes its split column."""
    from bertxml_lib import stages

    n = 40
    notes = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "note_id": [f"n{i}" for i in range(n)],
                          "text": [f"{TEXT} Visit {i}." for i in range(n)]} | ({"split": splits} if splits else {}))
    notes.to_csv(tmp_path / "notes.csv", index=False)
    pd.DataFrame({"note_id": notes["note_id"], "code": "I10"}).to_csv(tmp_path / "codes.csv", index=False)
    return stages.run_cohort(tmp_path / "run", seed=0, source="csv", n_patients=0, n_codes=0, min_chars=50,
                             excluded_types=[], split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2,
                             min_train_count=min_train_count, notes=str(tmp_path / "notes.csv"),
                             codes=str(tmp_path / "codes.csv"))


def test_a_split_with_no_notes_names_the_file_and_the_split_column(tmp_path):
    with pytest.raises(DataError, match=r"notes\.csv \(data\.notes\).*the dev split has no notes.*split column"):
        _cohort_from_csv(tmp_path, splits=["train"] * 30 + ["test"] * 10)
    assert not (tmp_path / "run" / "cohort" / "notes.parquet").exists()


def test_a_label_set_empty_after_the_threshold_names_the_threshold(tmp_path):
    with pytest.raises(DataError, match=r"codes\.csv \(data\.codes\).*no code has at least "
                                        r"cohort\.min_train_count=1000 training notes; lower cohort\.min_train_count"):
        _cohort_from_csv(tmp_path, min_train_count=1000)
    assert not (tmp_path / "run" / "cohort" / "notes.parquet").exists()
    assert _cohort_from_csv(tmp_path, min_train_count=5)["label_set_size"] == 1  # the same data, a lower threshold


# The rest of the bad-input list is tested elsewhere: an unknown `--set` key or a wrong type exits 2 before anything
# runs (tests/test_runner.py::test_usage_errors_exit_2_before_running), a DataError in a notebook exits 2
# naming the file (test_runner.py::test_bad_real_data_exits_2_..., ::test_an_empty_label_set_exits_2_...).
