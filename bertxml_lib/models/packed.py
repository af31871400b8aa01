"""Notebooks 03/04: the HF BERT encoder run on packed segments, no padded position computed (paper 4.1 inputs).

A batch's segments are concatenated into one row of T tokens (`segments.pack_segments`): positions restart
in every segment and attention keeps segments apart (variable-length attention: one attention call per run of
equal-length segments, never across two segments; SDPA, or `dropout_attention` when training on CPU with
attention dropout), so the result equals the padded HF forward
(`BertModel` with an attention mask) up to float summation order, while the embeddings, Q/K/V, attention
output and feed-forward matmuls see only real tokens. The weights are the HF modules' own (`model.bert`,
`model.head`, `mlm.cls`): nothing is copied, so training through this path trains the HF model, and
`save_pretrained` / `from_pretrained` are unchanged. tests/test_packed.py checks loss, gradients and
probabilities against the padded HF forward.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertForMaskedLM, BertModel

from bertxml_lib.models.dropout_attention import attention
from bertxml_lib.models.modeling import BertForIcdCoding, ClsHead, IcdCodingOutput, LanHead, XmlHead
from bertxml_lib.text.segments import pack_segments, pad_batch, pad_hier_batch


def supports_packed(model) -> bool:
    """Heads that read token states one segment at a time: cls, xml, lan (hier reads notes of segments)."""
    if isinstance(model, BertForMaskedLM):
        return True
    return isinstance(model, BertForIcdCoding) and isinstance(model.head, (ClsHead, XmlHead, LanHead))


def _runs(lengths: list[int]) -> list[tuple[int, int, int]]:
    """`(start token, n segments, length)` for each run of consecutive equal-length segments."""
    runs, start, i = [], 0, 0
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == lengths[i]:
            j += 1
        runs.append((start, j - i, lengths[i]))
        start += (j - i) * lengths[i]
        i = j
    return runs


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, runs: list[tuple[int, int, int]],
                     dropout: float) -> torch.Tensor:
    """`q, k, v (T, heads, head_dim)` -> `(T, heads * head_dim)`: each segment attends only to itself."""
    heads, head_dim = q.shape[1], q.shape[2]
    out = []
    for start, n, length in runs:
        block = slice(start, start + n * length)
        # (T, H, dh) rows of the run -> (n, H, length, dh): a view, no copy.
        qs, ks, vs = (t[block].view(n, length, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        o = attention(qs, ks, vs, dropout)  # (n, H, length, dh)
        out.append(o.transpose(1, 2).reshape(n * length, heads * head_dim))
    return out[0] if len(out) == 1 else torch.cat(out)


def encode_packed(bert: BertModel, input_ids: torch.Tensor, position_ids: torch.Tensor,
                  lengths: torch.Tensor) -> torch.Tensor:
    """Last hidden states `(T, hidden)` of packed segments; the same modules and order as `BertModel.forward`."""
    emb = bert.embeddings
    # BertEmbeddings: word + token type (all 0) + position, then LayerNorm and dropout.
    x = emb.word_embeddings(input_ids) + emb.token_type_embeddings.weight[0]
    x = emb.dropout(emb.LayerNorm(x + emb.position_embeddings(position_ids)))  # (T, hidden)
    runs = _runs(lengths.tolist())
    for layer in bert.encoder.layer:
        sa = layer.attention.self
        heads, head_dim = sa.num_attention_heads, sa.attention_head_size
        # Q, K and V in one matmul over the concatenated HF weights (gradients flow back to each).
        qkv = F.linear(x, torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]),
                       torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]))  # (T, 3 * hidden)
        q, k, v = (t.view(-1, heads, head_dim) for t in qkv.split(heads * head_dim, dim=-1))
        context = varlen_attention(q, k, v, runs, sa.dropout.p if sa.training else 0.0)  # (T, hidden)
        attended = layer.attention.output(context, x)  # dense, dropout, LayerNorm(+ residual)
        x = layer.output(layer.intermediate(attended), attended)
    return x


def unpad_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A right-padded batch `{input_ids, attention_mask[, labels]}` (labels per token, `(batch, seq)`) as packed
    segments `{input_ids, position_ids, lengths[, labels]}` (T,): the same tokens, masks and order, no padding."""
    mask = batch["attention_mask"].bool()  # (batch, seq), ones then zeros in every row
    lengths = mask.sum(dim=1)
    position_ids = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)[mask]
    out = {"input_ids": batch["input_ids"][mask], "position_ids": position_ids, "lengths": lengths.cpu()}
    if "labels" in batch:
        out["labels"] = batch["labels"][mask]
    return out


def _repad(hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(T, hidden)` -> `(n, longest, hidden)` and its 0/1 mask, for a head that attends over a segment's tokens."""
    rows = hidden.split(lengths.tolist())
    padded = nn.utils.rnn.pad_sequence(rows, batch_first=True)
    mask = torch.arange(padded.shape[1], device=hidden.device)[None, :] < lengths.to(hidden.device)[:, None]
    return padded, mask.long()


def icd_forward_packed(model: BertForIcdCoding, input_ids: torch.Tensor, position_ids: torch.Tensor,
                       lengths: torch.Tensor, labels: torch.Tensor | None = None) -> IcdCodingOutput:
    """`BertForIcdCoding.forward` on packed segments: logits `(n_segments, L)` in packing order.

    The encoder computes real tokens only; the xml/lan label-attention head (a few % of the FLOPs) reads
    the states re-padded per segment and masks the padding exactly as on the padded path."""
    if not supports_packed(model):
        raise ValueError(f"the packed path needs a cls, xml or lan head, got {model.config.icd_head!r}")
    hidden = encode_packed(model.bert, input_ids, position_ids, lengths)  # (T, hidden)
    if isinstance(model.head, ClsHead):
        starts = torch.cumsum(lengths, 0) - lengths  # each segment's [CLS]
        logits, label_attention = model.head(hidden[starts.to(hidden.device)][:, None], None)
    else:
        logits, label_attention = model.head(*_repad(hidden, lengths))
    loss = None
    if labels is not None:
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())  # paper 4.2.2, as the padded path
    return IcdCodingOutput(loss=loss, logits=logits, label_attention=label_attention)


class PackedMaskedLMLoss(nn.Module):
    """Sum of MLM cross-entropy over masked positions of packed segments, vocabulary logits only there.

    A module so DDP can wrap it (its forward arms DDP's gradient hooks), like `pretrain.MaskedLMLoss`."""

    def __init__(self, mlm: BertForMaskedLM):
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, lengths: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        hidden = encode_packed(self.mlm.bert, input_ids, position_ids, lengths)  # (T, hidden)
        selected = labels != -100  # (T,)
        logits = self.mlm.cls(hidden[selected])  # (n_masked, vocab)
        return F.cross_entropy(logits.float(), labels[selected], reduction="sum")


def coding_forward(model: BertForIcdCoding, items: list, pad_id: int, device, labels: torch.Tensor | None = None,
                   packed: bool = True) -> IcdCodingOutput:
    """The coding model on a batch of `items` (segments; notes of segments for the hier head): packed with no
    padding where the head allows (`packed=True`, the suite's path), else padded for the HF forward (the reference)."""
    if packed and supports_packed(model):
        input_ids, position_ids, lengths = pack_segments(items)
        return icd_forward_packed(model, input_ids.to(device), position_ids.to(device), lengths, labels)
    pad = pad_hier_batch if getattr(getattr(model, "config", None), "icd_head", None) == "hier" else pad_batch
    input_ids, attention_mask = pad(items, pad_id)
    if labels is None:  # any model called as model(input_ids, attention_mask)
        return model(input_ids.to(device), attention_mask.to(device))
    return model(input_ids.to(device), attention_mask.to(device), labels=labels)


def real_tokens(items: list) -> int:
    """Tokens in a batch of segments (or of notes of segments): what tokens/s counts, padding excluded."""
    return sum(len(s) if isinstance(s[0], int) else sum(map(len, s)) for s in items)
