"""The packed (unpadded) encoder path against the padded HF forward: losses, gradients, logits, pack_segments."""
import pytest
import torch
from transformers import BertForMaskedLM

from bertxml_lib.models.encoders import make_bert_config
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.models.packed import (
    PackedMaskedLMLoss,
    _runs,
    coding_forward,
    icd_forward_packed,
    real_tokens,
    supports_packed,
    unpad_batch,
)
from bertxml_lib.text.segments import pack_segments, pad_batch
from bertxml_lib.training.pretrain import MaskedLMLoss

# Two equal lengths first (one attention call for both), then two others; ids 5..99 are ordinary tokens.
LENGTHS = (32, 32, 14, 7)


def _segments():
    g = torch.Generator().manual_seed(0)
    return [[2, *torch.randint(5, 100, (n - 2,), generator=g).tolist(), 3] for n in LENGTHS]


def _config(head=None):
    config = make_bert_config("tiny", 100)
    config._attn_implementation = "eager"  # the paper's path as the reference
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    if head:
        config.icd_head, config.icd_codes = head, ["a", "b", "c"]
    return config


def _grads(model):
    g = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return g


def test_pack_segments_by_hand():
    ids, positions, lengths = pack_segments([[2, 7, 3], [2, 3]])
    assert ids.tolist() == [2, 7, 3, 2, 3] and positions.tolist() == [0, 1, 2, 0, 1] and lengths.tolist() == [3, 2]
    assert _runs([4, 4, 2, 1, 1]) == [(0, 2, 4), (8, 1, 2), (10, 2, 1)]
    with pytest.raises(ValueError, match="none of them empty"):
        pack_segments([[2, 3], []])


@pytest.mark.parametrize("head", ["xml", "cls", "lan"])
def test_icd_heads_match_padded_hf(head):
    torch.manual_seed(0)
    model = BertForIcdCoding(_config(head)).eval()
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    ids, mask = pad_batch(_segments(), 0)
    ids, mask = torch.nn.functional.pad(ids, (0, 40)), torch.nn.functional.pad(mask, (0, 40))  # extra padding
    ref = model(ids, mask, labels=labels)
    ref.loss.backward()
    ref_grads = _grads(model)
    got = icd_forward_packed(model, *pack_segments(_segments()), labels=labels)
    got.loss.backward()
    assert got.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    assert torch.allclose(got.logits, ref.logits, atol=1e-6)
    assert float((_grads(model) - ref_grads).norm() / ref_grads.norm()) < 1e-5


def test_masked_lm_matches_padded_hf():
    torch.manual_seed(0)
    model = BertForMaskedLM(_config()).eval()
    g = torch.Generator().manual_seed(1)
    labels = [torch.where(torch.rand(len(s), generator=g) < 0.3, torch.tensor(s), -100) for s in _segments()]
    ids, mask = pad_batch(_segments(), 0)
    padded_labels = torch.full(ids.shape, -100)
    for row, lab in enumerate(labels):
        padded_labels[row, :len(lab)] = lab
    ref = MaskedLMLoss(model)(ids, mask, padded_labels)
    ref.backward()
    ref_grads = _grads(model)
    got = PackedMaskedLMLoss(model)(*pack_segments(_segments()), torch.cat(labels))
    got.backward()
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert float((_grads(model) - ref_grads).norm() / ref_grads.norm()) < 1e-5


def test_hier_head_is_not_packed():
    config = _config("hier")
    config.hier_segment_len, config.hier_max_segments = 8, 2
    model = BertForIcdCoding(config)
    assert not supports_packed(model) and supports_packed(BertForIcdCoding(_config("xml")))
    with pytest.raises(ValueError, match="cls, xml or lan"):
        icd_forward_packed(model, *pack_segments(_segments()))


def test_unpad_batch_by_hand():
    batch = {"input_ids": torch.tensor([[2, 7, 3], [2, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
             "labels": torch.tensor([[-100, 9, -100], [-100, 4, -100]])}
    out = unpad_batch(batch)
    assert out["input_ids"].tolist() == [2, 7, 3, 2, 3] and out["position_ids"].tolist() == [0, 1, 2, 0, 1]
    assert out["lengths"].tolist() == [3, 2] and out["labels"].tolist() == [-100, 9, -100, -100, 4]


def test_coding_forward_packed_equals_padded_reference():
    torch.manual_seed(0)
    model = BertForIcdCoding(_config("xml")).eval()
    packed = coding_forward(model, _segments(), 0, "cpu")
    padded = coding_forward(model, _segments(), 0, "cpu", packed=False)
    assert torch.allclose(packed.logits, padded.logits, atol=1e-6)
    assert real_tokens(_segments()) == sum(LENGTHS) and real_tokens([_segments(), _segments()[:1]]) == sum(LENGTHS) + 32
