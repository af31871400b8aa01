"""Notebook 04: the ICD coding models, a HF BERT encoder + [CLS] head (eq. 1) or BERT-XML head (paper 3.3),
and the companion study's two heads (Ji et al., seed 003): LAN label attention (`lan`, LAAT form of Vu et
al. 2020) and hierarchical BERT (`hier`: segments -> [CLS] vectors -> one transformer layer -> LAN).

`BertForIcdCoding` keeps `model_type` "bert" and stores its head choice in the config (`icd_head`,
`icd_codes`, `xml_hidden`, `lan_hidden`, `hier_segment_len`, `hier_max_segments`), so
`BertForIcdCoding.from_pretrained` restores everything and `transformers.AutoModel.from_pretrained` on
the same folder loads just the encoder.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from bertxml_lib.core.progress import quiet_load
from bertxml_lib.text.segments import n_hier_segments

HEADS = ("cls", "xml", "lan", "hier")
#: Heads with per-label attention over the input (tokens for xml/lan, segments for hier).
ATTENTION_HEADS = ("xml", "lan", "hier")


@dataclass
class IcdCodingOutput(ModelOutput):
    """`logits (batch, L)`; `loss` only when labels are given; `label_attention (batch, L, seq)` for xml and
    lan, `(batch, L, n_segments)` for hier; None for cls."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    label_attention: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class ClsHead(nn.Module):
    """Eq. 1: y = sigma(W_out h_cls); the sigmoid lives in the loss / at prediction time."""

    def __init__(self, config: BertConfig, n_labels: int):
        super().__init__()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.out = nn.Linear(config.hidden_size, n_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.out(self.dropout(hidden[:, 0])), None  # (batch, L)


class XmlHead(nn.Module):
    """Eqs. 2-4: per-label attention over token states, then W_a relu(W_b c_j) shared across labels."""

    def __init__(self, config: BertConfig, n_labels: int):
        super().__init__()
        xml_hidden = getattr(config, "xml_hidden", None) or config.hidden_size
        self.label_vectors = nn.Parameter(torch.empty(n_labels, config.hidden_size))  # l_j, (L, hidden)
        self.W_b = nn.Linear(config.hidden_size, xml_hidden)
        self.W_a = nn.Linear(xml_hidden, 1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Eq. 2 scores <h_i, l_j>; fp32 so the softmax over up to 1,024 tokens stays exact under bf16.
        scores = torch.einsum("bsh,lh->bls", hidden, self.label_vectors.to(hidden.dtype)).float()  # (batch, L, seq)
        padding = (attention_mask == 0)[:, None, :]  # (batch, 1, seq)
        attention = scores.masked_fill(padding, float("-inf")).softmax(dim=-1)  # padding gets exactly 0
        context = torch.einsum("bls,bsh->blh", attention.to(hidden.dtype), hidden)  # eq. 3, (batch, L, hidden)
        logits = self.W_a(torch.relu(self.W_b(context))).squeeze(-1)  # eq. 4, (batch, L)
        return logits, attention


class LanHead(nn.Module):
    """Label attention network, LAAT form (Vu et al. 2020; Ji et al. 3.3 "LAN"), per label l over positions i:

    Z = tanh(W h_i) (W: hidden -> d_a), A_l = softmax_i(U_l Z_i), v_l = sum_i A_li h_i, logit_l = <beta_l, v_l> + b_l.

    Positions are tokens (`lan`) or segments (`hier`); masked over padding like `XmlHead`, softmax in fp32.
    """

    def __init__(self, config: BertConfig, n_labels: int):
        super().__init__()
        lan_hidden = getattr(config, "lan_hidden", None) or config.hidden_size
        self.W = nn.Linear(config.hidden_size, lan_hidden, bias=False)
        self.U = nn.Linear(lan_hidden, n_labels, bias=False)  # one attention query per label, (L, d_a)
        self.beta = nn.Parameter(torch.empty(n_labels, config.hidden_size))  # per-label output vectors
        self.bias = nn.Parameter(torch.empty(n_labels))

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.U(torch.tanh(self.W(hidden))).transpose(1, 2).float()  # (batch, L, seq), fp32
        padding = (attention_mask == 0)[:, None, :]  # (batch, 1, seq)
        attention = scores.masked_fill(padding, float("-inf")).softmax(dim=-1)  # padding gets exactly 0
        context = torch.einsum("bls,bsh->blh", attention.to(hidden.dtype), hidden)  # v_l, (batch, L, hidden)
        logits = (context * self.beta.to(hidden.dtype)).sum(-1) + self.bias.to(hidden.dtype)  # (batch, L)
        return logits, attention


class HierHead(nn.Module):
    """Hierarchical BERT (Ji et al. 3.2, Fig. 2): the segments' [CLS] vectors plus a learned segment-position
    embedding go through one transformer layer (heads = the encoder's, masked over absent segments), then
    LAN attention over the segments gives one set of logits per note."""

    def __init__(self, config: BertConfig, n_labels: int):
        super().__init__()
        self.segment_positions = nn.Embedding(config.hier_max_segments, config.hidden_size)
        layer = nn.TransformerEncoderLayer(
            config.hidden_size, config.num_attention_heads, dim_feedforward=config.intermediate_size,
            dropout=config.hidden_dropout_prob, activation="gelu", layer_norm_eps=config.layer_norm_eps,
            batch_first=True)
        self.segment_encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.attention = LanHead(config, n_labels)

    def forward(self, cls_states: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`cls_states (n_present, hidden)` in row-major order of `present (batch, n_segments)` (bool)."""
        batch, n_segments = present.shape
        if n_segments > self.segment_positions.num_embeddings:
            raise ValueError(f"{n_segments} segments per note, but the model has "
                             f"{self.segment_positions.num_embeddings} segment positions (config.hier_max_segments)")
        states = cls_states.new_zeros(batch, n_segments, cls_states.shape[-1])
        states[present] = cls_states
        states = states + self.segment_positions.weight[:n_segments].to(states.dtype)
        states = self.segment_encoder(states, src_key_padding_mask=~present)  # absent segments are never keys
        return self.attention(states, present)


class BertForIcdCoding(BertPreTrainedModel):
    """`BertModel` (no pooler) + the head named by `config.icd_head`, over `len(config.icd_codes)` labels."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        head = getattr(config, "icd_head", None)
        codes = getattr(config, "icd_codes", None)
        if head not in HEADS:
            raise ValueError(f"config.icd_head must be one of {HEADS}, got {head!r}")
        if not codes:
            raise ValueError("config.icd_codes must be a non-empty list of ICD code strings")
        if getattr(config, "xml_hidden", None) is None:
            config.xml_hidden = config.hidden_size
        if head in ("lan", "hier") and getattr(config, "lan_hidden", None) is None:
            config.lan_hidden = config.hidden_size
        if head == "hier":
            _check_hier_config(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = {"cls": ClsHead, "xml": XmlHead, "lan": LanHead, "hier": HierHead}[head](config, len(codes))
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> "BertForIcdCoding":
        model = super().from_pretrained(*args, **kwargs)
        # Loaded tensors can be unaligned views into the safetensors buffer, and CPU kernels then take
        # another vectorised path (ulp-level differences); owned copies make a reload bit-identical.
        with torch.no_grad():
            for param in model.parameters():
                param.data = param.data.clone()
        return model

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        # `init.normal_` skips tensors already loaded from a checkpoint, so loaded label vectors survive.
        if isinstance(module, XmlHead):
            init.normal_(module.label_vectors, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, LanHead):
            init.normal_(module.beta, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                output_attentions: bool = False) -> IcdCodingOutput:
        """`input_ids`, `attention_mask`: `(batch, seq)`; for the hier head `(batch, n_segments, seq)`, one note
        per row, an absent segment being all padding (`segments.pad_hier_batch`)."""
        hier = isinstance(self.head, HierHead)
        if hier:
            if input_ids.dim() != 3 or attention_mask.shape != input_ids.shape:
                raise ValueError("the hier head takes input_ids and attention_mask of shape (batch, n_segments, seq), "
                                 f"got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
            present = attention_mask[:, :, 0] > 0  # (batch, n_segments); a segment starts with [CLS]
            if not bool(present[:, 0].all()):
                raise ValueError("every note needs its first segment (attention_mask[:, 0, 0] == 1)")
            encoder_ids, encoder_mask = input_ids[present], attention_mask[present]  # only present segments
        else:
            encoder_ids, encoder_mask = input_ids, attention_mask
        with _eager_attention(self) if output_attentions else contextlib.nullcontext():
            encoded = self.bert(input_ids=encoder_ids, attention_mask=encoder_mask,
                                output_attentions=output_attentions, return_dict=True)
        if hier:
            logits, label_attention = self.head(encoded.last_hidden_state[:, 0], present)  # (batch, L)
        else:
            logits, label_attention = self.head(encoded.last_hidden_state, attention_mask)  # (batch, L)
        loss = None
        if labels is not None:
            # Paper 4.2.2: binary cross-entropy with equal weights across classes; fp32 under autocast.
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return IcdCodingOutput(loss=loss, logits=logits, label_attention=label_attention,
                               attentions=encoded.attentions if output_attentions else None)


@contextlib.contextmanager
def _eager_attention(model: BertForIcdCoding):
    """SDPA returns no attention weights, so switch to eager attention for calls that want them."""
    previous = model.config._attn_implementation
    if previous == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _check_hier_config(config: BertConfig) -> None:
    segment_len, n_segments = getattr(config, "hier_segment_len", None), getattr(config, "hier_max_segments", None)
    if not isinstance(segment_len, int) or not 3 <= segment_len <= config.max_position_embeddings:
        raise ValueError(f"the hier head needs config.hier_segment_len in [3, {config.max_position_embeddings}] "
                         f"(the encoder's positions), got {segment_len!r}")
    if not isinstance(n_segments, int) or n_segments < 1:
        raise ValueError(f"the hier head needs config.hier_max_segments >= 1, got {n_segments!r}")


def hier_max_tokens(config) -> int:
    """Note tokens a hier model reads: `hier_max_segments` segments of `hier_segment_len - 2` tokens."""
    return int(config.hier_max_segments) * (int(config.hier_segment_len) - 2)


def from_pretrained_encoder(encoder_dir: str | Path, head: str, codes: list[str], xml_hidden: int | None = None,
                            seed: int = 0, *, lan_hidden: int | None = None, hier_segment_len: int | None = None,
                            max_len: int | None = None) -> BertForIcdCoding:
    """A coding model whose encoder is copied from an MLM checkpoint (`bert.` prefix) or a plain `BertModel`.

    The head is freshly initialised from `seed`. The hier head needs `hier_segment_len` and `max_len` (a
    note's first `max_len` tokens are read, `segments.n_hier_segments` segments); other heads ignore them.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if not Path(encoder_dir, "config.json").is_file():
        raise ValueError(f"{encoder_dir}: not a saved HF model folder (no config.json)")
    # BertModel.from_pretrained strips the `bert.` prefix of a BertForMaskedLM checkpoint itself.
    encoder = quiet_load(BertModel.from_pretrained, encoder_dir, add_pooling_layer=False, attn_implementation="sdpa",
                         expected_unused=("cls.", "pooler."))  # an MLM head or pooler stays behind
    config = copy.deepcopy(encoder.config)
    config.icd_head, config.icd_codes = head, list(codes)
    config.xml_hidden = xml_hidden or config.hidden_size
    if head in ("lan", "hier"):
        config.lan_hidden = lan_hidden or config.hidden_size
    if head == "hier":

        if not hier_segment_len or not max_len:
            raise ValueError("the hier head needs hier_segment_len and max_len")
        config.hier_segment_len, config.icd_max_len = int(hier_segment_len), int(max_len)
        config.hier_max_segments = n_hier_segments(max_len, hier_segment_len)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForIcdCoding(config)
    model.bert.load_state_dict(encoder.state_dict())
    return model


def init_label_vectors(model: BertForIcdCoding, tokenizer, descriptions: list[str]) -> None:
    """Paper 3.3.2 "Semantic Label Embedding": l_j = mean input word embedding of description j's tokens."""
    if not isinstance(model.head, XmlHead):
        raise ValueError("init_label_vectors needs an xml model (config.icd_head == 'xml')")
    n_labels = model.head.label_vectors.shape[0]
    if len(descriptions) != n_labels:
        raise ValueError(f"got {len(descriptions)} descriptions for {n_labels} labels")
    embeddings = model.bert.get_input_embeddings().weight.detach()  # (vocab, hidden)
    token_ids = tokenizer([str(d) for d in descriptions], add_special_tokens=False)["input_ids"]
    fallback = embeddings.mean(dim=0)
    vectors = torch.stack([embeddings[ids].mean(dim=0) if ids else fallback for ids in token_ids])  # (L, hidden)
    with torch.no_grad():
        model.head.label_vectors.copy_(vectors.to(model.head.label_vectors.dtype))


def extend_position_embeddings(model_or_bert: BertForIcdCoding | BertModel | transformers.PreTrainedModel,
                               new_max: int, seed: int) -> None:
    """Paper 4.2.1: grow position embeddings to `new_max`; new rows ~ N(0, initializer_range), old kept."""
    bert = model_or_bert if isinstance(model_or_bert, BertModel) else getattr(model_or_bert, "bert", None)
    if not isinstance(bert, BertModel):
        raise ValueError(f"expected a BertModel or a model with a `.bert` BertModel, got {type(model_or_bert).__name__}")
    embeddings = bert.embeddings
    old = embeddings.position_embeddings.weight
    old_max, hidden = old.shape
    if new_max < old_max:
        raise ValueError(f"new_max={new_max} is below the current {old_max} positions")
    generator = torch.Generator().manual_seed(seed)
    new_rows = torch.randn(new_max - old_max, hidden, generator=generator) * bert.config.initializer_range
    extended = nn.Embedding(new_max, hidden, device=old.device, dtype=old.dtype)
    with torch.no_grad():
        extended.weight.copy_(torch.cat([old.detach(), new_rows.to(old.device, old.dtype)]))
    embeddings.position_embeddings = extended
    device = embeddings.position_ids.device
    embeddings.position_ids = torch.arange(new_max, device=device).expand((1, -1))
    # token_type_ids is a buffer sized like position_ids and gathered by position.
    embeddings.token_type_ids = torch.zeros((1, new_max), dtype=torch.long, device=device)
    bert.config.max_position_embeddings = new_max
    if model_or_bert is not bert:
        model_or_bert.config.max_position_embeddings = new_max
