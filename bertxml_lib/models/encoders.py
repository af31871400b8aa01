"""Notebook 03/04: the BERT encoder sizes of paper Table 1 (4.2.1) plus small profile-sized ones.

`small` and `big` are Table 1 verbatim; `tiny` and `mini` are not in the paper: they keep the same
shape (gelu, dropout .1, 1,024 positions) at a size the `ci` and `quick` profiles can pretrain on CPU.
"""
from __future__ import annotations

import transformers

# Shared by every encoder: Table 1 rows that do not change between sizes.
_COMMON = {
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 1024,  # paper 4.2.1: positions extended to 1,024 for long notes
}

ENCODERS: dict[str, dict] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256, **_COMMON},
    "mini": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512, **_COMMON},
    "small": {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "intermediate_size": 2048, **_COMMON},
    "big": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, **_COMMON},
}


def make_bert_config(name: str, vocab_size: int, pad_token_id: int = 0) -> transformers.BertConfig:
    """A `BertConfig` for encoder `name` over a vocabulary of `vocab_size` WordPiece tokens."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    if vocab_size <= 0 or not 0 <= pad_token_id < vocab_size:
        raise ValueError(f"encoder {name!r}: need vocab_size > 0 and 0 <= pad_token_id < vocab_size, "
                         f"got vocab_size={vocab_size}, pad_token_id={pad_token_id}")
    return transformers.BertConfig(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        attn_implementation="sdpa",
        **ENCODERS[name],
    )
