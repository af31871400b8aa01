"""The on-disk token cache changes speed only — same segments and predictions with and without it,
a new entry for another tokenizer or other notes, and a corrupted, foreign or half-written entry never used."""
from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
import transformers
from conftest import TOY_WORDS, make_toy_tokenizer

from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.text import token_cache
from bertxml_lib.text.segments import encode_notes, encode_notes_hierarchical
from bertxml_lib.training.finetune import FinetuneConfig, finetune, predict_notes


def notes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TOY_WORDS) for _ in range(rng.randint(0, 30))) for _ in range(n)]


@pytest.fixture(scope="module")
def tok():
    return make_toy_tokenizer()


def entries(cache):
    return sorted(p.name for p in cache.glob("*.npz")) if cache.exists() else []


def test_cached_segments_equal_uncached_for_every_max_len(tmp_path, tok, monkeypatch):
    texts = notes(40, 0) + ["", "alpha"]
    cache = tmp_path / "cache" / "tokens"
    expected = {}
    for max_len in (6, 16, 64):
        expected[max_len] = encode_notes(tok, texts, max_len, batch_size=7)
        cached = encode_notes(tok, texts, max_len, batch_size=7, cache_dir=cache)
        assert cached[0] == expected[max_len][0] and np.array_equal(cached[1], expected[max_len][1])
    assert len(entries(cache)) == 1  # one entry per (tokenizer, notes): max_len is applied after loading
    hier = encode_notes_hierarchical(tok, texts, 20, 8)
    # A hit never tokenizes: the same answers with the tokenizer call broken.
    monkeypatch.setattr(token_cache, "tokenize_batched", lambda *a, **k: pytest.fail("cache miss"))
    assert encode_notes(tok, texts, 16, cache_dir=cache)[0] == expected[16][0]
    assert encode_notes_hierarchical(tok, texts, 20, 8, cache_dir=cache) == hier


def test_another_tokenizer_or_other_notes_get_their_own_entry(tmp_path, tok):
    texts = notes(20, 1)
    encode_notes(tok, texts, 16, cache_dir=tmp_path)
    other = transformers.BertTokenizerFast(tokenizer_object=make_toy_tokenizer().backend_tokenizer,
                                           unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                           sep_token="[SEP]", mask_token="[MASK]")
    other.add_tokens(["alphabeta"])                       # one more vocabulary entry: another tokenizer
    assert token_cache.cache_key(other, texts) != token_cache.cache_key(tok, texts)
    assert encode_notes(other, texts, 16, cache_dir=tmp_path)[0] == encode_notes(other, texts, 16)[0]
    changed = texts[:-1] + [texts[-1] + " fever"]        # one word more in one note
    assert token_cache.cache_key(tok, changed) != token_cache.cache_key(tok, texts)
    assert token_cache.cache_key(tok, ["ab", "c"]) != token_cache.cache_key(tok, ["a", "bc"])
    encode_notes(tok, changed, 16, cache_dir=tmp_path)
    assert len(entries(tmp_path)) == 3
    # Call-time truncation state of the HF wrapper does not change the key.
    key = token_cache.cache_key(tok, texts)
    tok(["alpha beta gamma"], truncation=True, max_length=2)
    assert token_cache.cache_key(tok, texts) == key


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "tampered"])
def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, tok, damage):
    texts, other_texts = notes(30, 2), notes(30, 3)
    reference = encode_notes(tok, texts, 12)
    encode_notes(tok, texts, 12, cache_dir=tmp_path)
    encode_notes(tok, other_texts, 12, cache_dir=tmp_path)
    entry = tmp_path / f"{token_cache.cache_key(tok, texts)}.npz"
    other = tmp_path / f"{token_cache.cache_key(tok, other_texts)}.npz"
    data = entry.read_bytes()
    if damage == "garbage":
        entry.write_bytes(b"not an npz file")
    elif damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":                              # another entry's file under this name
        entry.write_bytes(other.read_bytes())
    else:                                                  # ids changed, key kept: the digest catches it
        with np.load(entry) as z:
            ids, offsets, meta = z["ids"].copy(), z["offsets"], z["meta"]
        ids[0] += 1
        with open(entry, "wb") as fh:
            np.savez(fh, ids=ids, offsets=offsets, meta=meta)
    with pytest.warns(UserWarning, match="token cache entry"):
        got = encode_notes(tok, texts, 12, cache_dir=tmp_path)
    assert got[0] == reference[0] and np.array_equal(got[1], reference[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # repaired: the next read is a clean hit
        assert encode_notes(tok, texts, 12, cache_dir=tmp_path)[0] == reference[0]


def test_an_interrupted_write_leaves_no_entry(tmp_path, tok, monkeypatch):
    texts = notes(25, 4)

    def savez_dies(fh, **arrays):
        fh.write(b"PK\x03\x04 half an entry")
        raise KeyboardInterrupt

    monkeypatch.setattr(token_cache.np, "savez", savez_dies)
    with pytest.raises(KeyboardInterrupt):
        encode_notes(tok, texts, 12, cache_dir=tmp_path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []                  # neither the entry nor its temporary folder
    assert encode_notes(tok, texts, 12, cache_dir=tmp_path)[0] == encode_notes(tok, texts, 12)[0]


def test_finetune_and_predict_are_the_same_with_the_cache(tmp_path, tok):
    texts = notes(80, 5)
    labels = np.array([[("alpha" in t), ("beta" in t)] for t in texts], dtype=np.float32)
    dev, dev_labels = texts[:20], labels[:20]
    cfg = FinetuneConfig(epochs=1, batch_tokens=128, lr=3e-3, head_lr=3e-3, eval_batch_size=8, seed=0, device="cpu",
                         max_len=16)
    runs = []
    for cache in (None, tmp_path, tmp_path):             # uncached, cold cache, warm cache
        config = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                         pad_token_id=tok.pad_token_id)
        config.icd_head, config.icd_codes = "xml", ["A01", "B02"]
        torch.manual_seed(0)
        model = BertForIcdCoding(config)
        result = finetune(model, tok, texts, labels, dev, dev_labels, cfg, progress=False, cache_dir=cache)
        probs = predict_notes(model, tok, dev, 16, eval_batch_size=8, device="cpu", progress=False, cache_dir=cache)
        runs.append(([h["train_loss"] for h in result["history"]], probs))
    assert len(entries(tmp_path)) == 2                     # train and dev notes
    for losses, probs in runs[1:]:
        assert losses == runs[0][0]
        np.testing.assert_array_equal(probs, runs[0][1])
