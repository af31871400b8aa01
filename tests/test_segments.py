"""Segmenting, length-bucketed batching and segment max-pooling (paper 4.1) on hand-built fixtures."""

import numpy as np
import pytest
import torch
from conftest import make_toy_tokenizer as make_tokenizer

from bertxml_lib.text.segments import (
    encode_notes,
    length_bucketed_batches,
    max_pool_segments,
    pad_batch,
    pad_fraction,
    split_into_segments,
)

CLS, SEP = 2, 3


def test_split_eleven_tokens_max_len_six():
    ids = list(range(10, 21))  # 11 tokens, 4 content tokens per segment
    assert split_into_segments(ids, 6, CLS, SEP) == [
        [CLS, 10, 11, 12, 13, SEP],
        [CLS, 14, 15, 16, 17, SEP],
        [CLS, 18, 19, 20, SEP],
    ]


def test_split_exact_multiple_and_empty_note():
    assert split_into_segments([7, 8, 9, 10], 6, CLS, SEP) == [[CLS, 7, 8, 9, 10, SEP]]
    assert split_into_segments([], 6, CLS, SEP) == [[CLS, SEP]]
    with pytest.raises(ValueError, match="max_len"):
        split_into_segments([1, 2], 2, CLS, SEP)


def test_encode_notes_keeps_every_token_and_note_index():
    tokenizer = make_tokenizer()
    texts = ["alpha beta gamma", "", "patient pain right hip fracture chest cough fever history alpha"]
    segments, note_index = encode_notes(tokenizer, texts, max_len=6, batch_size=2)
    per_note = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    expected = [s for ids in per_note for s in split_into_segments(ids, 6, tokenizer.cls_token_id,
                                                                   tokenizer.sep_token_id)]
    assert segments == expected
    assert note_index.tolist() == [i for i, ids in enumerate(per_note) for _ in range(max(1, -(-len(ids) // 4)))]
    assert segments[note_index.tolist().index(1)] == [tokenizer.cls_token_id, tokenizer.sep_token_id]


def _check_partition(batches, n):
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(n))


def test_bucketing_budget_partition_and_determinism():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 300, size=3000)
    lengths[17] = 5000  # longer than the budget: a batch of its own
    batches = length_bucketed_batches(lengths, batch_tokens=1024, shuffle=True, seed=3, max_batch_size=16)
    _check_partition(batches, len(lengths))
    for b in batches:
        assert len(b) <= 16
        assert len(b) * lengths[b].max() <= 1024 or len(b) == 1
    assert [b.tolist() for b in batches if 17 in b] == [[17]]
    again = length_bucketed_batches(lengths, batch_tokens=1024, shuffle=True, seed=3, max_batch_size=16)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again)) and len(batches) == len(again)
    other = length_bucketed_batches(lengths, batch_tokens=1024, shuffle=True, seed=4, max_batch_size=16)
    assert [b.tolist() for b in other] != [b.tolist() for b in batches]
    # Shuffled order: the batches' max lengths are not monotone.
    maxima = np.array([lengths[b].max() for b in batches])
    assert not (np.all(np.diff(maxima) <= 0) or np.all(np.diff(maxima) >= 0))
    assert pad_fraction(lengths, batches) < 0.05


def test_bucketing_unshuffled_sorted_lengths_pad_little():
    lengths = np.arange(1, 1001)
    batches = length_bucketed_batches(lengths, batch_tokens=4000, shuffle=False, seed=0)
    _check_partition(batches, len(lengths))
    assert batches[0][0] == 999  # longest first
    assert pad_fraction(lengths, batches) < 0.02


def test_pad_batch_and_pad_fraction_by_hand():
    ids, mask = pad_batch([[2, 5, 3], [2, 3]], pad_id=0)
    assert torch.equal(ids, torch.tensor([[2, 5, 3], [2, 3, 0]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [1, 1, 0]]))
    # One batch of lengths 2 and 4: 8 positions computed, 6 real.
    assert pad_fraction([2, 4], [np.array([0, 1])]) == pytest.approx(0.25)


def test_max_pool_segments_by_hand():
    probs = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.3], [0.7, 0.05]], dtype=np.float32)
    note_index = np.array([2, 0, 2, 1])
    pooled = max_pool_segments(probs, note_index, n_notes=3)
    np.testing.assert_array_equal(pooled, np.array([[0.5, 0.2], [0.7, 0.05], [0.3, 0.9]], dtype=np.float32))
    with pytest.raises(ValueError, match="at least one segment"):
        max_pool_segments(probs, note_index, n_notes=4)
