"""The real CodiEsp corpus (shared/data/codiesp, generic notes.csv/codes.csv layout) loads through the
`csv` source with the counts its stats.json records. Only counts are checked: nothing is fitted on it."""
from __future__ import annotations

import json
import warnings

import pytest
from conftest import SHARED

from bertxml_lib.data import loaders
from bertxml_lib.data.validation import DataWarning

CODIESP = SHARED / "data" / "codiesp"
pytestmark = pytest.mark.skipif(not (CODIESP / "stats.json").exists(), reason="shared/data/codiesp is not present")


@pytest.fixture(scope="module")
def stats():
    return json.loads((CODIESP / "stats.json").read_text())


@pytest.fixture(scope="module")
def corpus():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # every code belongs to a note, none is empty
        notes, codes, info = loaders.load_csv_source(CODIESP / "notes.csv", CODIESP / "codes.csv")
    return notes, codes.merge(notes[["note_id", "split"]], on="note_id"), info


def test_documents_and_official_split(corpus, stats):
    notes, _, _ = corpus
    assert len(notes) == stats["docs_total"]
    assert notes["split"].value_counts().to_dict() == stats["docs_per_split"]
    assert (notes["note_type"] == "clinical_case").all() and notes["note_date"].isna().all()


def test_code_assignments_and_unique_codes(corpus, stats):
    notes, codes, info = corpus
    assert info["code_rows"] == len(codes) == stats["code_assignments_total"]  # no pair collapses on normalising
    assert codes["split"].value_counts().to_dict() == stats["code_assignments_per_split"]
    assert codes["code"].nunique() == stats["unique_codes_all_splits"]
    assert codes.groupby("split")["code"].nunique().to_dict() == stats["unique_codes_per_split"]
    per_doc = codes.groupby("note_id").size()
    assert len(per_doc) == len(notes) - stats["docs_without_codes"] and per_doc.max() == stats["codes_per_doc_max"]


def test_training_code_frequencies(corpus, stats):
    _, codes, _ = corpus
    train = codes[codes["split"] == "train"].groupby("code")["note_id"].nunique()
    for k in (1, 5, 10, 20):
        assert int((train >= k).sum()) == stats[f"codes_with_train_occurrences_ge_{k}"]
    for row in stats["top30_codes_train_counts"]:
        assert train[row["code"]] == row["train_count"]


def test_english_word_counts(corpus, stats):
    notes, _, _ = corpus
    words = notes["text"].str.split().str.len()
    assert words.median() == stats["text_words_en_whitespace"]["all"]["median"]
    assert (words.min(), words.max()) == (stats["text_words_en_whitespace"]["all"]["min"],
                                          stats["text_words_en_whitespace"]["all"]["max"])


def test_spanish_text_has_the_same_documents(corpus, stats):
    notes, _, _ = corpus
    spanish = loaders.load_notes_table(CODIESP / "notes_es.csv")
    assert spanish["note_id"].tolist() == notes["note_id"].tolist()
    assert spanish["text"].str.split().str.len().median() == stats["text_words_es_whitespace"]["all"]["median"]
