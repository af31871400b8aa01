"""Scale: the streaming cohort build gives exactly what the in-memory rules give, on synthetic
cohorts (in order, shuffled, from Parquet or a DataFrame, with tiny batches and buckets) and on hand-made
fixtures (given split, unknown dates, codes for unknown notes, ICD-9). Correctness only, never timing."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bertxml_lib.data import cohort, cohort_stream
from bertxml_lib.data.synthetic import write_synthetic

RULES = dict(seed=0, min_chars=50, excluded_types=["erroneous", "student", "miscellaneous"],
             split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2, min_train_count=5)


def _outputs(out):
    c = cohort.load_cohort(out)
    stats = json.loads((out / "cohort" / "stats.json").read_text())
    return c.notes, json.loads((out / "cohort" / "label_set.json").read_text()), stats


def assert_same_cohort(tmp_path, notes, codes, stream_notes=None, stream_codes=None, **rules):
    """Build with the in-memory reference (DataFrames) and the streaming build (paths or DataFrames)."""
    rules = RULES | rules
    ref = cohort.build_cohort_in_memory(notes, codes, tmp_path / "ref", **rules)
    got = cohort.build_cohort(notes if stream_notes is None else stream_notes,
                              codes if stream_codes is None else stream_codes, tmp_path / "stream", **rules)
    assert got == ref
    ref_notes, ref_labels, ref_stats = _outputs(tmp_path / "ref")
    got_notes, got_labels, got_stats = _outputs(tmp_path / "stream")
    pd.testing.assert_frame_equal(got_notes, ref_notes)  # same rows, order, columns, dtypes, codes, labels
    assert got_labels == ref_labels and got_stats == ref_stats
    return got


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    raw_dir = tmp_path_factory.mktemp("raw")
    write_synthetic(raw_dir, n_patients=90, n_codes=300, seed=3, batch_patients=25)
    return raw_dir / "notes.parquet", raw_dir / "codes.parquet"


def test_synthetic_parquet_streams_to_the_same_cohort(tmp_path, raw, monkeypatch):
    monkeypatch.setattr(cohort_stream, "BATCH_BYTES", 20_000)  # ~10 notes a batch: many batches, many row groups
    monkeypatch.setattr(cohort_stream, "CANDIDATES_PER_CHUNK", 50)  # chronic imputation in many chunks
    notes, codes = pd.read_parquet(raw[0]), pd.read_parquet(raw[1])
    stats = assert_same_cohort(tmp_path, notes, codes, raw[0], raw[1])
    assert stats["notes"] > 500 and stats["imputed_code_rows"] > 0 and stats["label_set_size"] > 10
    assert pq.ParquetFile(tmp_path / "stream" / "cohort" / "notes.parquet").metadata.num_row_groups > 20


@pytest.mark.parametrize("as_file", [True, False])
def test_unsorted_input_is_reordered_the_same_way(tmp_path, raw, monkeypatch, as_file):
    """A shuffled source: from a Parquet file through on-disk buckets, or from a DataFrame by take."""
    monkeypatch.setattr(cohort_stream, "BATCH_BYTES", 50_000)
    monkeypatch.setattr(cohort_stream, "BUCKET_BYTES", 100_000)  # ~12 buckets
    notes = pd.read_parquet(raw[0]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    codes = pd.read_parquet(raw[1]).sample(frac=1.0, random_state=2).reset_index(drop=True)
    path = tmp_path / "shuffled.parquet"
    notes.to_parquet(path, index=False, row_group_size=97)
    assert_same_cohort(tmp_path, notes, codes, path if as_file else notes)
    assert not list(tmp_path.rglob("*.arrow"))  # spill buckets are removed


def _hand_cohort(hand_notes, copies=40):
    return pd.concat([hand_notes.assign(patient_id=hand_notes["patient_id"] + f"_{k}",
                                        note_id=hand_notes["note_id"] + f"_{k}") for k in range(copies)],
                     ignore_index=True)


def test_hand_fixture_same_as_in_memory(tmp_path, hand_notes):
    notes = _hand_cohort(hand_notes)
    codes = pd.DataFrame({"note_id": [f"n2_{k}" for k in range(40)] + [f"n4_{k}" for k in range(40)]
                          + ["n1_0", "unknown-note"], "code": ["i10"] * 80 + ["J06.9", "I10"]})
    assert_same_cohort(tmp_path, notes, codes, excluded_types=["erroneous"])


def test_given_split_unknown_dates_and_short_notes(tmp_path, hand_notes):
    notes = _hand_cohort(hand_notes, 10)
    notes["split"] = ["train"] * 30 + ["dev"] * 10 + ["test"] * 10
    notes.loc[notes.index % 7 == 3, "note_date"] = pd.NaT        # unknown dates: never imputed, sorted last
    notes.loc[notes.index % 11 == 5, "text"] = "  too short  "
    notes.loc[notes.index % 13 == 4, "note_type"] = "Student"
    notes = notes.sample(frac=1.0, random_state=0).reset_index(drop=True)
    codes = pd.DataFrame({"note_id": np.repeat(notes["note_id"].to_numpy(), 2),
                          "code": ["I10", "E78.5"] * len(notes)})
    codes.loc[codes.index % 5 == 0, "code"] = "I2510"
    stats = assert_same_cohort(tmp_path, notes, codes, excluded_types=["student"], min_train_count=3)
    assert stats["split_source"] == "given"


def test_icd9_labels_are_never_imputed(tmp_path, hand_notes):
    notes = _hand_cohort(hand_notes, 30)
    codes = pd.DataFrame({"note_id": [f"n{i}_{k}" for k in range(30) for i in (1, 3)], "code": ["4019", "25000"] * 30})
    stats = assert_same_cohort(tmp_path, notes, codes, icd_version=9, excluded_types=[])
    assert stats["imputed_code_rows"] == 0


@pytest.mark.parametrize("rules,match", [(dict(min_train_count=10_000), "min_train_count"),
                                         (dict(split_fractions=[0.0, 0.0, 1.0]), "train split has no notes")])
def test_errors_are_the_same_and_nothing_is_written(tmp_path, hand_notes, rules, match):
    notes = _hand_cohort(hand_notes, 20)
    codes = pd.DataFrame({"note_id": notes["note_id"], "code": "I10"})
    with pytest.raises(ValueError, match=match) as ref:
        cohort.build_cohort_in_memory(notes, codes, tmp_path / "ref", **(RULES | rules))
    with pytest.raises(ValueError, match=match) as got:
        cohort.build_cohort(notes, codes, tmp_path / "stream", **(RULES | rules))
    assert str(got.value) == str(ref.value)
    assert not (tmp_path / "stream").exists()


def test_duplicate_note_ids_are_an_error(tmp_path, hand_notes):
    notes = pd.concat([_hand_cohort(hand_notes, 20), hand_notes.iloc[[0]].assign(note_id="n1_3")], ignore_index=True)
    with pytest.raises(ValueError, match="n1_3.*more than once"):
        cohort.build_cohort(notes, pd.DataFrame({"note_id": ["n1_0"], "code": ["I10"]}), tmp_path, **RULES)


@pytest.mark.parametrize("dtype", ["str", object])
def test_word_counts_equal_pythons_split(dtype):
    texts = pd.Series(["", " ", "a", " a ", "a  b\tc\nd", "x\x1cy\x1fz", "a\u00a0b", "é b", "\u3000x y", None,
                       "a\x85b", "tail ", "\x0b\x0c", "w" * 9] * 3, dtype=dtype).iloc[2:]
    got = cohort_stream.count_words(texts)
    np.testing.assert_array_equal(got, texts.str.split().str.len().to_numpy(dtype=float))


def test_notebook01_reports_read_only_what_they_need(tmp_path, raw, monkeypatch):
    """stats_vs_paper's token sample, the figure's word counts and the label-set table, without load_cohort."""
    from bertxml_lib.reporting import cohort_report

    monkeypatch.setattr(cohort_stream, "BATCH_BYTES", 100_000)
    cohort.build_cohort(raw[0], raw[1], tmp_path, **RULES)
    notes = cohort.load_cohort(tmp_path)
    path = tmp_path / "cohort" / "notes.parquet"
    picked = notes.notes["text"].sample(n=50, random_state=0)   # what _p90_tokens sampled before
    assert cohort_report._texts_at(path, picked.index.to_numpy()) == picked.tolist()
    assert cohort_report._word_counts(path).tolist() == notes.notes["text"].str.split().str.len().tolist()
    table = cohort_report.label_set_table(tmp_path)
    assert table["code"].tolist() == notes.codes
    assert table["train_notes"].tolist() == [notes.train_counts[c] for c in notes.codes]
    cohort_report.cohort_figure(tmp_path)
    assert (tmp_path / "figures" / "cohort_overview.png").stat().st_size > 10_000
