"""Notebook 04: the ICD coding models, a HF BERT encoder + [CLS] head (eq. 1) or BERT-XML head (paper 3.3).

`BertForIcdCoding` keeps `model_type` "bert" and stores its head choice in the config (`icd_head`,
`icd_codes`, `xml_hidden`), so `BertForIcdCoding.from_pretrained` restores everything and
`transformers.AutoModel.from_pretrained` on the same folder loads just the encoder.
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

HEADS = ("cls", "xml")


@dataclass
class IcdCodingOutput(ModelOutput):
    """`logits (batch, L)`; `loss` only when labels are given; `label_attention (batch, L, seq)` for xml."""

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
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = (ClsHead if head == "cls" else XmlHead)(config, len(codes))
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                output_attentions: bool = False) -> IcdCodingOutput:
        with _eager_attention(self) if output_attentions else contextlib.nullcontext():
            encoded = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                output_attentions=output_attentions, return_dict=True)
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


def from_pretrained_encoder(encoder_dir: str | Path, head: str, codes: list[str], xml_hidden: int | None = None,
                            seed: int = 0) -> BertForIcdCoding:
    """A coding model whose encoder is copied from an MLM checkpoint (`bert.` prefix) or a plain `BertModel`.

    The head is freshly initialised from `seed`.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if not Path(encoder_dir, "config.json").is_file():
        raise ValueError(f"{encoder_dir}: not a saved HF model folder (no config.json)")
    # BertModel.from_pretrained strips the `bert.` prefix of a BertForMaskedLM checkpoint itself.
    encoder = BertModel.from_pretrained(encoder_dir, add_pooling_layer=False, attn_implementation="sdpa")
    config = copy.deepcopy(encoder.config)
    config.icd_head, config.icd_codes = head, list(codes)
    config.xml_hidden = xml_hidden or config.hidden_size
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
