"""Fine-tuning on a tiny separable toy task (paper 4.2.2) and the inference paths (4.1, Figure 3)."""
import random

import numpy as np
import pytest
import torch
import transformers
from conftest import TOY_WORDS
from conftest import make_toy_tokenizer as make_tokenizer
from sklearn.metrics import roc_auc_score

from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.text.segments import encode_notes
from bertxml_lib.training.finetune import FinetuneConfig, finetune, predict_notes, predict_with_attention

WORDS = TOY_WORDS
FILLER = [w for w in WORDS if w not in ("alpha", "beta")]


def toy_notes(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Label 0 = the note contains 'alpha', label 1 = it contains 'beta'; lengths 3-24 words."""
    rng = random.Random(seed)
    texts, labels = [], np.zeros((n, 2), dtype=np.float32)
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 24))]
        for j, keyword in enumerate(("alpha", "beta")):
            if rng.random() < 0.4:
                words.insert(rng.randrange(len(words) + 1), keyword)
                labels[i, j] = 1.0
        texts.append(" ".join(words))
    return texts, labels


def tiny_model(tokenizer, head: str, seed: int = 0) -> BertForIcdCoding:
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                     pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")
    config.icd_head, config.icd_codes = head, ["A01", "B02"]
    torch.manual_seed(seed)
    return BertForIcdCoding(config)


CFG = FinetuneConfig(epochs=2, batch_tokens=128, lr=3e-3, head_lr=3e-3, warmup=0.1, weight_decay=0.01,
                     eval_batch_size=16, seed=0, device="cpu", max_len=16)


@pytest.mark.parametrize("head", ["cls", "xml"])
def test_finetune_learns_toy_task_deterministically(head):
    tokenizer = make_tokenizer()
    train_texts, train_labels = toy_notes(600, seed=1)
    dev_texts, dev_labels = toy_notes(60, seed=2)
    runs = []
    for _ in range(2):
        model = tiny_model(tokenizer, head)
        result = finetune(model, tokenizer, train_texts, train_labels, dev_texts, dev_labels, CFG, progress=False)
        runs.append((model, result))
    (model, result), (_, again) = runs
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert max(h["dev_micro_auc"] for h in history) > 0.9
    assert result["best_dev_micro_auc"] == max(h["dev_micro_auc"] for h in history)
    assert result["n_train_segments"] > len(train_texts)  # max_len 16 splits the longer notes
    assert 0.0 <= result["pad_fraction"] < 0.3
    strip = lambda h: [(e["train_loss"], e["dev_micro_auc"]) for e in h]  # timings differ run to run
    assert strip(again["history"]) == strip(history) and again["best_epoch"] == result["best_epoch"]
    # The best epoch's weights are restored: predicting dev again reproduces its AUC.
    probs = predict_notes(model, tokenizer, dev_texts, CFG.max_len, eval_batch_size=8, device="cpu", progress=False)
    assert roc_auc_score(dev_labels.ravel(), probs.ravel()) == pytest.approx(result["best_dev_micro_auc"], abs=1e-6)


def test_finetune_rejects_bad_labels():
    tokenizer = make_tokenizer()
    texts, labels = toy_notes(10, seed=3)
    with pytest.raises(ValueError, match="train_labels"):
        finetune(tiny_model(tokenizer, "cls"), tokenizer, texts, labels[:, :1], texts, labels, CFG, progress=False)


def test_predict_notes_equals_manual_segment_max():
    tokenizer = make_tokenizer()
    model = tiny_model(tokenizer, "xml").eval()
    texts, _ = toy_notes(12, seed=4)
    texts[3] = ""
    probs = predict_notes(model, tokenizer, texts, max_len=10, eval_batch_size=4, batch_tokens=25,
                          device="cpu", progress=False)
    segments, note_index = encode_notes(tokenizer, texts, max_len=10)
    expected = np.full((len(texts), 2), -np.inf, dtype=np.float32)
    with torch.no_grad():
        for segment, note in zip(segments, note_index):
            ids = torch.tensor([segment])
            p = torch.sigmoid(model(ids, torch.ones_like(ids)).logits)[0].numpy()
            expected[note] = np.maximum(expected[note], p)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-6)


def test_predict_with_attention_offsets_and_weights():
    tokenizer = make_tokenizer()
    model = tiny_model(tokenizer, "xml")
    text = "Right hip fracture, chest pain alpha " + " ".join(FILLER * 3)
    tokens, offsets, weights = predict_with_attention(model, tokenizer, text, max_len=12, code_index=1, device="cpu")
    assert len(tokens) == len(offsets) == len(weights) == 12
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert offsets[0] == offsets[-1] == (0, 0)
    assert text[offsets[1][0]:offsets[1][1]] == "Right" and tokens[1] == "right"
    assert weights.sum() == pytest.approx(1.0, abs=1e-5) and np.all(weights > 0)
    with pytest.raises(ValueError, match="code_index"):
        predict_with_attention(model, tokenizer, text, max_len=12, code_index=2, device="cpu")


def test_finetune_restores_best_epoch(monkeypatch):
    """With dev AUC 0.9 then 0.5, the weights after fine-tuning are those seen after epoch 1."""
    import bertxml_lib.training.finetune as ft

    snapshots, aucs = [], iter([0.9, 0.5])
    real_predict = ft._predict_segments

    def recording_predict(model, *args):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_predict(model, *args)

    monkeypatch.setattr(ft, "_predict_segments", recording_predict)
    monkeypatch.setattr(ft, "roc_auc_score", lambda y, p: next(aucs))
    tokenizer = make_tokenizer()
    texts, labels = toy_notes(40, seed=5)
    model = tiny_model(tokenizer, "xml")
    result = finetune(model, tokenizer, texts, labels, texts, labels, CFG, progress=False)
    assert result["best_epoch"] == 1 and [h["dev_micro_auc"] for h in result["history"]] == [0.9, 0.5]
    final = model.state_dict()
    assert any(not torch.equal(snapshots[0][k], snapshots[1][k]) for k in final)
    assert all(torch.equal(final[k], snapshots[0][k]) for k in final)
