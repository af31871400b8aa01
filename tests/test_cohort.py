"""Paper 4.1 rules on hand-made data: filters, patient-level split, chronic imputation, label set."""
import pandas as pd
import pytest

from bertxml_lib.data import cohort


def test_filters_drop_excluded_types_and_short_notes():
    notes = pd.DataFrame({
        "note_type": ["progress note", "Erroneous", "student", "progress note", "miscellaneous", "telephone encounter"],
        "text": ["a" * 50, "a" * 80, "a" * 80, "a" * 49, "a" * 80, "  " + "b" * 48 + "  "],
    })
    kept, dropped = cohort.filter_notes(notes, 50, ["erroneous", "student", "miscellaneous"])
    assert kept["text"].tolist() == ["a" * 50]  # 48 chars after strip is too short
    assert dropped == {"excluded_type": 3, "too_short": 2, "kept": 1}


def test_split_is_by_patient_deterministic_and_near_70_10_20():
    notes = pd.DataFrame({"patient_id": [f"p{i // 3}" for i in range(6000)]})
    splits = cohort.assign_splits(notes, seed=7, fractions=[0.7, 0.1, 0.2])
    assert (splits.groupby(notes["patient_id"]).nunique() == 1).all()  # every patient in exactly one split
    assert splits.equals(cohort.assign_splits(notes, seed=7, fractions=[0.7, 0.1, 0.2]))
    share = splits.value_counts(normalize=True)
    assert abs(share["train"] - 0.7) < 0.04 and abs(share["dev"] - 0.1) < 0.03 and abs(share["test"] - 0.2) < 0.03
    other = cohort.assign_splits(notes, seed=8, fractions=[0.7, 0.1, 0.2])
    assert not splits.equals(other)


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="summing to 1"):
        cohort.assign_splits(pd.DataFrame({"patient_id": ["a"]}), 0, [0.5, 0.1, 0.1])


def test_chronic_code_seen_twice_is_imputed_forward_from_first_occurrence(hand_notes):
    # p1: I10 (chronic) coded on n2 and n4 -> imputed on n2, n3, n4 (not n1, before onset).
    # p1: J06.9 (acute) coded twice -> never imputed.  p1: E78.5 (chronic) coded once -> not imputed.
    # p2: I10 once -> not imputed.
    codes = pd.DataFrame({
        "note_id": ["n2", "n4", "n1", "n3", "n3", "n5"],
        "code": ["I10", "I10", "J06.9", "J06.9", "E78.5", "I10"],
    })
    out = cohort.impute_chronic(hand_notes, codes, min_count=2)
    got = {(r.note_id, r.code, r.imputed) for r in out.itertuples()}
    assert got == {
        ("n2", "I10", False), ("n3", "I10", True), ("n4", "I10", False),
        ("n1", "J06.9", False), ("n3", "J06.9", False), ("n3", "E78.5", False), ("n5", "I10", False),
    }


def test_label_set_counts_training_notes_only():
    codes = pd.DataFrame({"note_id": ["a", "b", "c", "d", "d"], "code": ["I10", "I10", "E78.5", "E78.5", "I10"]})
    label_set, counts = cohort.build_label_set(codes, train_note_ids={"a", "b", "c"}, min_train_count=2)
    assert label_set == ["I10"] and counts == {"I10": 2}  # E78.5 has 1 train note (d is not train)


def test_build_cohort_writes_labels_and_keeps_notes_without_codes(tmp_path, hand_notes):
    notes = pd.concat([hand_notes.assign(patient_id=hand_notes["patient_id"] + f"_{k}",
                                         note_id=hand_notes["note_id"] + f"_{k}") for k in range(40)])
    codes = pd.DataFrame({"note_id": [f"n2_{k}" for k in range(40)] + [f"n4_{k}" for k in range(40)],
                          "code": ["i10"] * 80})
    stats = cohort.build_cohort(notes, codes, tmp_path, seed=0, min_chars=50, excluded_types=["erroneous"],
                                split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2, min_train_count=5)
    c = cohort.load_cohort(tmp_path)
    assert c.codes == ["I10"] and "hypertension" in c.descriptions["I10"].lower()
    assert stats["notes"] == 200
    n1 = c.notes[c.notes["note_id"].str.startswith("n1_")]
    assert (n1["labels"].str.len() == 0).all()  # kept, with all-zero labels
    n3 = c.notes[c.notes["note_id"].str.startswith("n3_")]
    assert all(l == ["I10"] for l in n3["labels"])  # imputed between the two observations
    y = c.labels("train")
    assert y.shape == (len(c.split("train")), 1) and y.dtype.name == "float32"
    assert set(c.notes.groupby("patient_id")["split"].nunique()) == {1}


def test_empty_label_set_is_a_clear_error(tmp_path, hand_notes):
    codes = pd.DataFrame({"note_id": ["n1"], "code": ["I10"]})
    with pytest.raises(ValueError, match="min_train_count"):
        cohort.build_cohort(pd.concat([hand_notes.assign(patient_id=f"q{k}", note_id=hand_notes["note_id"] + str(k))
                                       for k in range(20)]), codes, tmp_path, seed=0, min_chars=50,
                            excluded_types=[], split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2,
                            min_train_count=1000)


def test_a_split_given_by_the_source_is_honoured(tmp_path, hand_notes):
    notes = pd.concat([hand_notes.assign(patient_id=hand_notes["patient_id"] + f"_{k}",
                                         note_id=hand_notes["note_id"] + f"_{k}") for k in range(10)])
    notes["split"] = ["train"] * 30 + ["dev"] * 10 + ["test"] * 10
    codes = pd.DataFrame({"note_id": notes["note_id"], "code": ["I10"] * len(notes)})
    stats = cohort.build_cohort(notes, codes, tmp_path, seed=0, min_chars=50, excluded_types=[],
                                split_fractions=[0.7, 0.1, 0.2], chronic_min_count=2, min_train_count=5)
    c = cohort.load_cohort(tmp_path)
    assert dict(zip(c.notes["note_id"], c.notes["split"])) == dict(zip(notes["note_id"], notes["split"]))
    assert stats["split_source"] == "given"
