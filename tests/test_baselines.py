"""TF-IDF logistic regression (paper 3.4.1, 4.3): truncation, 1-2-grams, train-only vocabulary, constant codes,
C chosen on dev only."""
import json

import numpy as np
import pandas as pd
import pytest

from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation.predictions import load_predictions
from bertxml_lib.training import baselines


def test_first_words_lowercases_splits_on_word_characters_and_truncates():
    assert baselines.first_words("Chest pain, HTN; chest X-ray.", 3) == ["chest", "pain", "htn"]
    assert baselines.first_words("a b", 10) == ["a", "b"]
    assert baselines.first_words("", 5) == []


def test_vocabulary_is_fit_on_train_only_and_on_the_first_max_tokens_words():
    train = ["alpha beta", "alpha gamma late_word"]
    Y = np.array([[1], [0]])
    # Train words within the first 2 words: alpha, beta, gamma ("late_word" is word 3 of note 2), and the
    # bigrams "alpha beta", "alpha gamma" (none reaches past word 2).
    _, test_probs, info = baselines.bag_of_words_logreg(train, Y, ["x"], ["zzz_only_in_test", "", "late_word"],
                                                        max_tokens=2, reading="first")
    assert info["vocab_size"] == 5
    # A test-only word and a word seen only beyond max_tokens in train are not features: same as an empty note.
    assert test_probs[0, 0] == test_probs[1, 0] == test_probs[2, 0]


def test_segments_cover_the_whole_note_and_a_note_scores_its_best_segment():
    """paper 4.1: consecutive max_tokens-word segments, each carrying its note's labels; a note's probability
    is the max over its segments, so evidence past word max_tokens still counts."""
    segments, index = baselines.word_segments(["a b c d e", "", "f g"], 2)
    assert segments == ["a b", "c d", "e", "", "f g"] and index.tolist() == [0, 0, 0, 1, 2]
    filler = " ".join(["filler"] * 6)
    train = [f"{filler} htn", f"{filler} asthma", f"{filler} htn", f"{filler} cough"] * 5
    Y = np.array([[1], [0], [1], [0]] * 5)
    test = [f"{filler} htn", f"{filler} asthma"]
    _, seg, info = baselines.bag_of_words_logreg(train, Y, ["htn"], test, max_tokens=4, C=10.0)
    _, cut, _ = baselines.bag_of_words_logreg(train, Y, ["htn"], test, max_tokens=4, C=10.0, reading="first")
    assert info["n_train_segments"] == 40 and seg[0, 0] > seg[1, 0] + 0.2  # "htn" is word 7, past the cut
    assert cut[0, 0] == cut[1, 0]  # cut to 4 words, both notes read "filler filler filler filler"


def test_codes_without_positives_or_negatives_get_constant_probabilities():
    train = ["htn lisinopril", "asthma inhaler", "htn amlodipine", "cough asthma"]
    Y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])  # code 1 never positive, code 2 always
    dev_probs, test_probs, info = baselines.bag_of_words_logreg(train, Y, ["htn"], ["asthma", "htn"])
    assert info["n_codes_constant"] == 2
    assert (test_probs[:, 1] == 0.0).all() and (test_probs[:, 2] == 1.0).all()
    assert test_probs[1, 0] > test_probs[0, 0]  # htn note scores higher for the htn code
    assert dev_probs.shape == (1, 3) and test_probs.dtype == np.float32


def test_separable_toy_task_ranks_perfectly_and_is_deterministic():
    rng = np.random.default_rng(0)
    filler = ["patient", "seen", "today", "follow", "up", "clinic", "stable"]
    evidence = ["hypertension", "asthma", "diabetes"]
    texts, labels = [], []
    for _ in range(200):
        y = rng.integers(0, 2, size=3)
        words = list(rng.choice(filler, size=6)) + [evidence[j] for j in range(3) if y[j]]
        texts.append(" ".join(rng.permutation(words)))
        labels.append(y)
    Y = np.array(labels)
    dev_a, test_a, _ = baselines.bag_of_words_logreg(texts[:160], Y[:160], texts[160:180], texts[180:], C=100.0, seed=3)
    dev_b, test_b, _ = baselines.bag_of_words_logreg(texts[:160], Y[:160], texts[160:180], texts[180:], C=100.0, seed=3)
    np.testing.assert_array_equal(test_a, test_b)
    np.testing.assert_array_equal(dev_a, dev_b)
    for j in range(3):
        pos, neg = test_a[Y[180:, j] == 1, j], test_a[Y[180:, j] == 0, j]
        assert pos.min() > neg.max()


def test_word_ngrams_are_unigrams_then_bigrams_of_the_first_words():
    assert baselines.word_ngrams("Chest pain, HTN.", 512) == ["chest", "pain", "htn", "chest pain", "pain htn"]
    assert baselines.word_ngrams("a b c", 2) == ["a", "b", "a b"]
    assert baselines.word_ngrams("", 5) == []


def _toy(seed: int, n: int, flip: float = 0.0):
    """Notes of filler words plus a code's evidence word; `flip` of the labels are wrong (noise)."""
    rng = np.random.default_rng(seed)
    filler = ["patient", "seen", "today", "follow", "up", "clinic", "stable", "plan"]
    y = rng.integers(0, 2, size=(n, 2))
    texts = [" ".join(list(rng.choice(filler, size=5)) + [w for j, w in enumerate(["htn", "asthma"]) if y[i, j]])
             for i in range(n)]
    noisy = np.where(rng.random(y.shape) < flip, 1 - y, y)
    return texts, noisy


def test_C_is_the_grid_value_with_the_best_dev_micro_auc():
    train, Y = _toy(0, 40, flip=0.25)
    dev, Y_dev = _toy(1, 20, flip=0.25)
    test, _ = _toy(2, 10)
    dev_probs, test_probs, info = baselines.bag_of_words_logreg(train, Y, dev, test, C=[0.01, 1.0, 100.0], Y_dev=Y_dev)
    by_C = {float(k): v for k, v in info["dev_micro_auc_by_C"].items()}
    assert set(by_C) == {0.01, 1.0, 100.0} and info["C_grid"] == [0.01, 1.0, 100.0]
    best = max(by_C.values())
    assert by_C[info["C"]] == best and info["C"] == min(c for c, v in by_C.items() if v == best)  # ties: smaller C
    # The returned probabilities are those of the chosen C, fit on train only.
    single_dev, single_test, _ = baselines.bag_of_words_logreg(train, Y, dev, test, C=info["C"])
    np.testing.assert_array_equal(dev_probs, single_dev)
    np.testing.assert_array_equal(test_probs, single_test)
    # Ties go to the smaller C: two large C that rank a clean dev set identically.
    (clean_dev, clean_Y), (clean_train, clean_Y_train) = _toy(3, 20), _toy(4, 40)
    _, _, tied = baselines.bag_of_words_logreg(clean_train, clean_Y_train[:, :1], clean_dev, test, C=[30.0, 100.0],
                                               Y_dev=clean_Y[:, :1])
    assert tied["dev_micro_auc_by_C"]["30"] == tied["dev_micro_auc_by_C"]["100"] and tied["C"] == 30.0


def test_single_fitted_code_works():
    dev, test, info = baselines.bag_of_words_logreg(["a b", "c d"], np.array([[1], [0]]), ["a"], ["c", "a"])
    assert info["n_codes_constant"] == 0 and test[1, 0] > test[0, 0]


@pytest.mark.parametrize("kwargs, match", [
    ({"Y_train": np.array([[1], [0], [1]])}, "Y_train must be"),
    ({"train_texts": [], "Y_train": np.zeros((0, 1))}, "n_train=0 > 0"),
    ({"Y_train": np.array([[2], [0]])}, "0/1"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"C": 0.0}, "C > 0"),
    ({"C": []}, "C > 0"),
    ({"C": [1.0, 10.0]}, "needs Y_dev"),
    ({"test_texts": ["ok", None]}, r"test_texts\[1\]"),
])
def test_bad_input_is_rejected(kwargs, match):
    args = {"train_texts": ["a", "b"], "Y_train": np.array([[1], [0]]), "dev_texts": ["a"], "test_texts": ["b"]}
    with pytest.raises(ValueError, match=match):
        baselines.bag_of_words_logreg(**{**args, **kwargs})


def test_run_logreg_writes_predictions_and_metrics(tmp_path):
    rng = np.random.default_rng(1)
    codes = ["I10", "J45.909"]
    words = {"I10": "hypertension", "J45.909": "asthma"}
    rows = []
    for i, split in enumerate(["train"] * 30 + ["dev"] * 8 + ["test"] * 10):
        labels = [c for c in codes if rng.random() < 0.5] or ([codes[i % 2]] if split != "train" else [])
        text = " ".join(["patient seen in clinic today"] + [words[c] for c in labels])
        rows.append({"patient_id": f"p{i}", "note_id": f"n{i}", "note_date": pd.Timestamp("2020-01-01"),
                     "note_type": "progress note", "text": text, "split": split, "codes": labels, "labels": labels})
    notes = pd.DataFrame(rows)
    paths = RunPaths(tmp_path)
    paths.cohort_dir.mkdir(parents=True)
    notes.to_parquet(paths.cohort_notes, index=False)
    write_json(paths.label_set, {"codes": codes, "descriptions": {c: c for c in codes},
                                 "train_counts": {c: 10 for c in codes}, "min_train_count": 1})

    record = baselines.run_logreg(tmp_path, max_tokens=512, C=[0.1, 1.0, 10.0], seed=0)
    assert record["C"] in (0.1, 1.0, 10.0) and set(record["dev_micro_auc_by_C"]) == {"0.1", "1", "10"}
    assert record["model"] == "logreg_512" and record["family"] == "logreg" and record["max_len"] == 512
    assert record["micro_auc"] == 1.0 and record["macro_auc"] == 1.0 and record["n_codes_skipped"] == 0
    saved = json.loads(paths.metrics_file("logreg_512").read_text())
    assert saved["micro_auc"] == record["micro_auc"] and "dev_micro_auc" in saved and "train_seconds" in saved
    pred = load_predictions(paths.predictions_file("logreg_512"))
    assert list(pred.codes) == codes and pred.test_probs.shape == (10, 2)
    assert list(pred.test_note_ids) == [f"n{i}" for i in range(38, 48)]


def test_run_logreg_choice_of_C_ignores_test_labels(tmp_path):
    """C is chosen on dev: relabelling every test note changes neither the chosen C nor any probability."""
    texts, Y = _toy(5, 60, flip=0.2)
    codes = ["I10", "J45.909"]
    splits = ["train"] * 36 + ["dev"] * 12 + ["test"] * 12
    records = []
    for relabel in (False, True):
        out = tmp_path / str(relabel)
        labels = [[c for j, c in enumerate(codes) if (1 - Y[i, j] if relabel and s == "test" else Y[i, j])]
                  for i, s in enumerate(splits)]
        notes = pd.DataFrame({"patient_id": [f"p{i}" for i in range(60)], "note_id": [f"n{i}" for i in range(60)],
                              "note_date": pd.Timestamp("2020-01-01"), "note_type": "progress note", "text": texts,
                              "split": splits, "codes": labels, "labels": labels})
        paths = RunPaths(out)
        paths.cohort_dir.mkdir(parents=True)
        notes.to_parquet(paths.cohort_notes, index=False)
        write_json(paths.label_set, {"codes": codes, "descriptions": {c: c for c in codes},
                                     "train_counts": {c: 10 for c in codes}, "min_train_count": 1})
        records.append((baselines.run_logreg(out, C=[0.01, 1.0, 100.0]), load_predictions(paths.predictions_file("logreg_512"))))
    (a, pa), (b, pb) = records
    assert a["C"] == b["C"] and a["dev_micro_auc_by_C"] == b["dev_micro_auc_by_C"]
    np.testing.assert_array_equal(pa.test_probs, pb.test_probs)
    assert a["micro_auc"] != b["micro_auc"]  # the test labels did change


def test_the_reading_is_chosen_on_dev_like_C():
    """a list of readings is fit each with the C grid; the best dev micro AUC wins and every one is recorded."""
    filler = " ".join(["filler"] * 6)
    train = [f"{filler} htn", f"{filler} asthma", f"htn {filler}", f"cough {filler}"] * 5
    Y = np.array([[1], [0], [1], [0]] * 5)
    dev, Y_dev = [f"{filler} htn", f"{filler} cough"], np.array([[1], [0]])
    _, test, info = baselines.bag_of_words_logreg(train, Y, dev, dev, max_tokens=4, C=[1.0, 10.0], Y_dev=Y_dev,
                                                  reading=["first", "segments", "whole"])
    by_reading = info["dev_micro_auc_by_reading"]
    assert set(by_reading) == {"first", "segments", "whole"} and info["reading"] in ("segments", "whole")
    assert by_reading["first"] == 0.5 and by_reading[info["reading"]] == max(by_reading.values())
    assert test[0, 0] > test[1, 0]
    _, whole, _ = baselines.bag_of_words_logreg(train, Y, dev, dev, C=10.0, reading="whole")
    _, first, _ = baselines.bag_of_words_logreg(train, Y, dev, dev, max_tokens=100, C=10.0, reading="first")
    np.testing.assert_array_equal(whole, first)  # notes shorter than max_tokens: the same bag
    with pytest.raises(ValueError, match="reading must be one of"):
        baselines.bag_of_words_logreg(train, Y, dev, dev, reading="sentences")
