"""Notebook 05's neural baselines: the multi-head attention GRU with StarSpace inputs (paper 3.4.2,
4.3) and the CAML CNN (Ji et al.'s retrained CNN), their training-only fitting, saved folders and the
predict CLI on them."""
from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch

from bertxml_lib import stages
from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation import metrics
from bertxml_lib.evaluation.predictions import load_predictions
from bertxml_lib.inference import predict
from bertxml_lib.models import neural
from bertxml_lib.text import words
from bertxml_lib.training import neural_baselines as nb
from bertxml_lib.training import starspace

CODES = ["I10", "J45.909", "E11.9"]
KEYWORD = {"I10": "hypertension", "J45.909": "asthma", "E11.9": "diabetes"}
FILLER = "patient seen in clinic today with stable vitals and no acute distress noted by the team".split()


def toy_notes(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Notes of filler words where each code's keyword appears somewhere iff the note has the code."""
    rng = np.random.default_rng(seed)
    texts, Y = [], np.zeros((n, len(CODES)), dtype=np.float32)
    for i in range(n):
        Y[i] = rng.random(len(CODES)) < 0.4
        if not Y[i].any():
            Y[i, i % len(CODES)] = 1
        words = list(rng.choice(FILLER, size=int(rng.integers(8, 30))))
        for j in np.flatnonzero(Y[i]):
            words.insert(int(rng.integers(0, len(words) + 1)), KEYWORD[CODES[j]])
        texts.append(" ".join(words))
    return texts, Y


def test_vocabulary_is_training_words_only_and_unknown_words_map_to_unk():
    vocab = neural.build_vocabulary(["Chest pain chest", "pain fever"], max_tokens=512, min_count=2)
    assert vocab == ["<pad>", "<unk>", "chest", "pain"]  # counts 2 and 2: alphabetical
    ids = neural.encode(["chest cough pain", ""], vocab, max_tokens=2)
    assert ids[0].tolist() == [2, neural.UNK] and ids[1].tolist() == [neural.UNK]  # cut at 2 words; empty -> one unk
    spans = words.word_spans("Chest  PAIN, fever", 2)
    assert [(w, "Chest  PAIN, fever"[a:b]) for w, a, b in spans] == [("chest", "Chest"), ("pain", "PAIN")]


def test_starspace_embeds_notes_near_their_codes():
    texts, Y = toy_notes(150, seed=0)
    vocab = neural.build_vocabulary(texts, 512, 1)
    docs = neural.encode(texts, vocab, 512)
    words, labels, losses = starspace.train_starspace(docs, Y, len(vocab), dim=32, epochs=15, seed=0)
    assert words.shape == (len(vocab), 32) and labels.shape == (3, 32) and not words[0].any()
    assert losses[-1] < losses[0]
    held_texts, held_Y = toy_notes(60, seed=1)
    scores = starspace.rank_scores(words, labels, neural.encode(held_texts, vocab, 512))
    # Cosine scores rank notes per code (they are not calibrated across codes): macro AUC on held-out notes.
    assert metrics.macro_auc(held_Y, scores)[0] > 0.8
    again = starspace.train_starspace(docs, Y, len(vocab), dim=32, epochs=15, seed=0)[0]
    np.testing.assert_array_equal(words, again)  # same seed, same embeddings
    frozen = starspace.frozen_input_embeddings(words)
    assert np.sqrt(np.mean(frozen[1:] ** 2)) == pytest.approx(1.0, rel=1e-4) and not frozen[0].any()


@pytest.mark.parametrize("kind", ["mha", "cnn"])
def test_padding_never_changes_a_notes_logits(kind):
    torch.manual_seed(0)
    model = (neural.MultiHeadAttentionGRU(np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32), 6, 3, 4)
             if kind == "mha" else neural.Caml(20, 8, 5, 3, 4)).eval()
    short, long = np.array([3, 4, 5]), np.arange(2, 15)
    alone, _ = model(*neural.pad_ids([short]))
    batched, attention = model(*neural.pad_ids([short, long]))
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)
    att = attention[0] if kind == "mha" else attention[0]
    n_valid = 3 if kind == "mha" else int(model.positions(torch.tensor([3]))[0])
    assert torch.all(att[:, n_valid:] == 0) and torch.allclose(att.sum(-1), torch.ones(att.shape[0]))


@pytest.mark.parametrize("kind", ["mha", "cnn"])
def test_models_learn_the_toy_task_and_choose_lr_and_epoch_on_dev(kind):
    train_t, Y_train = toy_notes(120, 0)
    dev_t, Y_dev = toy_notes(30, 1)
    test_t, Y_test = toy_notes(40, 2)
    vocab = neural.build_vocabulary(train_t, 512, 1)
    train, dev, test = (neural.encode(t, vocab, 512) for t in (train_t, dev_t, test_t))
    if kind == "mha":
        emb = starspace.frozen_input_embeddings(starspace.train_starspace(train, Y_train, len(vocab), 16, 5)[0])
        build = lambda: neural.MultiHeadAttentionGRU(emb, 16, 4, len(CODES))  # noqa: E731
        lrs = [1e-2, 1e-5]
    else:
        build = lambda: neural.Caml(len(vocab), 16, 8, 3, len(CODES))  # noqa: E731
        lrs = [1e-2]
    device = torch.device("cpu")
    model, best, history = nb.train_baseline(build, train, Y_train, dev, Y_dev, lrs, 6, 8, 0.0, 0, device,
                                             progress=False)
    assert len(history) == len(lrs) * 6
    top = history.loc[history["dev_micro_auc"].idxmax()]
    assert (best["lr"], best["epoch"]) == (top["lr"], top["epoch"])  # the best dev AUC, first on ties
    probs = neural.predict_probs(model, test, device)
    assert metrics.micro_auc(Y_test, probs) > 0.9
    np.testing.assert_allclose(metrics.micro_auc(Y_dev, neural.predict_probs(model, dev, device)), best["dev_micro_auc"])
    again, _, _ = nb.train_baseline(build, train, Y_train, dev, Y_dev, lrs, 6, 8, 0.0, 0, device, progress=False)
    np.testing.assert_array_equal(probs, neural.predict_probs(again, test, device))  # one seed, same numbers


def write_toy_cohort(out) -> pd.DataFrame:
    rows = []
    for split, n, seed in (("train", 90, 0), ("dev", 20, 1), ("test", 30, 2)):
        texts, Y = toy_notes(n, seed)
        for text, y in zip(texts, Y):
            labels = [c for c, v in zip(CODES, y) if v]
            i = len(rows)
            rows.append({"patient_id": f"p{i}", "note_id": f"n{i}", "note_date": pd.Timestamp("2020-01-01"),
                         "note_type": "progress note", "text": text, "split": split, "codes": labels,
                         "labels": labels})
    notes = pd.DataFrame(rows)
    paths = RunPaths(out)
    paths.cohort_dir.mkdir(parents=True)
    notes.to_parquet(paths.cohort_notes, index=False)
    write_json(paths.label_set, {"codes": CODES, "descriptions": {c: f"{KEYWORD[c]} (toy)" for c in CODES},
                                 "train_counts": {c: 10 for c in CODES}, "min_train_count": 1, "icd_version": 10})
    return notes


BASELINE_ARGS = dict(seed=0, max_tokens=512, C=1.0, min_word_count=1, mha_emb_dim=16, mha_starspace_epochs=5,
                     mha_hidden=16, mha_heads=4, mha_lrs=[1e-2], mha_epochs=10, mha_batch_size=8, cnn_emb_dim=16,
                     cnn_filters=8, cnn_kernel=3, cnn_lr=1e-2, cnn_epochs=10, cnn_batch_size=8, n_bootstrap=20,
                     logreg_readings=["segments", "whole"],
                     device="cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines_run")
    notes = write_toy_cohort(out)
    results = {m: stages.run_baseline(out, model=m, **BASELINE_ARGS) for m in ("mha", "cnn", "logreg")}
    return out, notes, results


def test_run_baseline_writes_rows_predictions_models_and_histories(run_dir):
    out, notes, results = run_dir
    paths = RunPaths(out)
    for kind in ("mha", "cnn"):
        row = f"{kind}_512"
        record = json.loads(paths.metrics_file(row).read_text())
        assert (record["model"], record["family"], record["status"], record["max_len"]) == (row, kind, "ok", 512)
        assert record["micro_auc"] > 0.9 and record["best_lr"] == 1e-2 and 1 <= record["best_epoch"] <= 10
        pred = load_predictions(paths.predictions_file(row))
        assert list(pred.test_note_ids) == notes.loc[notes["split"] == "test", "note_id"].tolist()
        assert neural.is_neural_baseline(paths.model_dir(row))
        history = pd.read_csv(paths.table(f"baseline_history_{row}.csv"))
        assert len(history) == 10 and "seconds" not in history  # tables hold only what the seed fixes
    assert results["logreg"]["row"] == "logreg_512" and results["logreg"]["history"].empty
    reference = pd.read_csv(paths.table("logreg_reference.csv"))
    assert reference.loc[0, "verdict"] in ("stronger", "weaker", "no difference")
    assert reference.loc[0, "table2_logreg_micro_auc"] == pytest.approx(
        json.loads(paths.metrics_file("logreg_512").read_text())["micro_auc"])
    assert reference.loc[0, "n_resamples"] == 20 and reference.loc[0, "ci_low"] <= reference.loc[0, "ci_high"]
    with pytest.raises(ValueError, match="logreg, mha or cnn"):
        stages.run_baseline(out, model="rnn", **BASELINE_ARGS)


def test_vocabulary_and_embeddings_never_see_dev_or_test_notes(run_dir, tmp_path):
    out, notes, _ = run_dir
    vocab = json.loads((RunPaths(out).model_dir("mha_512") / "vocab.json").read_text())
    train_words = {w for t in notes.loc[notes["split"] == "train", "text"] for w in t.lower().split()}
    assert set(vocab[2:]) <= train_words
    # Rewriting the test notes' text changes nothing that was fitted: same dev predictions.
    other = tmp_path / "other"
    changed = notes.copy()
    changed.loc[changed["split"] == "test", "text"] = "zebra " * 20
    write_toy_cohort(other)
    changed.to_parquet(RunPaths(other).cohort_notes, index=False)
    stages.run_baseline(other, model="cnn", **BASELINE_ARGS)
    a, b = (load_predictions(RunPaths(d).predictions_file("cnn_512")) for d in (out, other))
    np.testing.assert_array_equal(a.dev_probs, b.dev_probs)


@pytest.mark.parametrize("kind", ["mha", "cnn"])
def test_predict_cli_on_a_baseline_folder_matches_its_predictions_with_evidence(run_dir, tmp_path, capsys, kind):
    out, notes, _ = run_dir
    test = notes[notes["split"] == "test"].head(6)
    notes_csv = tmp_path / "notes.csv"
    with open(notes_csv, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("note_id", "text"), *zip(test["note_id"], test["text"])])
    folder = RunPaths(out).model_dir(f"{kind}_512")
    assert predict.main(["--model", str(folder), "--top-k", "2", "--quiet", str(notes_csv)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["head"], result["max_len"]) == (kind, 512)
    saved = load_predictions(RunPaths(out).predictions_file(f"{kind}_512"))
    texts = dict(zip(test["note_id"], test["text"]))
    for i, note in enumerate(result["notes"]):
        expected = np.sort(saved.test_probs[i])[::-1][:2]
        assert [c["probability"] for c in note["codes"]] == pytest.approx(expected, abs=1e-5)
        top = note["codes"][0]
        assert top["description"].endswith("(toy)")
        assert 1 <= len(top["evidence"]) <= 3
        for span in top["evidence"]:
            assert span["text"] == texts[note["note_id"]][span["start"]:span["end"]]
    # The top code's keyword is among its evidence in most notes (what the models learned to read).
    hits = [KEYWORD.get(n["codes"][0]["code"], "?") in " ".join(s["text"] for s in n["codes"][0]["evidence"])
            for n in result["notes"]]
    assert sum(hits) >= len(hits) // 2
