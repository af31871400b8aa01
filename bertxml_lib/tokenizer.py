"""Notebook 02 — EHR WordPiece vocabulary trained on the training notes (paper 3.2, 4.2.1) and OOV statistics."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertTokenizerFast

from .atomic import atomic_path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int, out_dir: str | Path) -> BertTokenizerFast:
    """Train an uncased BERT WordPiece vocabulary with `tokenizers` and save it so
    `AutoTokenizer.from_pretrained(out_dir)` loads it. Pass TRAINING notes only (leakage guard)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, clean_text=True, handle_chinese_chars=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##", show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
        cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True, model_max_length=1024,
    )
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        fast.save_pretrained(tmp)
    return AutoTokenizer.from_pretrained(out_dir)


def oov_per_note(tokenizer, texts: list[str], batch_size: int = 512) -> pd.DataFrame:
    """Per note: words, words split into several WordPieces, words that became [UNK].

    A word is what BERT's pre-tokenizer yields (whitespace and punctuation split); the paper's
    "OOV words per note" (49.2 general vs 0.93 EHR) counts words not kept whole: split + [UNK]."""
    backend = _untruncated(tokenizer)
    unk_id = tokenizer.unk_token_id
    rows = []
    for start in range(0, len(texts), batch_size):
        for enc in backend.encode_batch(texts[start:start + batch_size], add_special_tokens=False):
            word_ids = np.array([-1 if w is None else w for w in enc.word_ids])
            ids = np.array(enc.ids)
            if len(word_ids) == 0:
                rows.append((0, 0, 0, 0))
                continue
            pieces = np.bincount(word_ids[word_ids >= 0])
            pieces = pieces[pieces > 0]
            unk_words = len(np.unique(word_ids[(ids == unk_id) & (word_ids >= 0)]))
            rows.append((len(pieces), int((pieces > 1).sum()), unk_words, len(ids)))
    df = pd.DataFrame(rows, columns=["words", "split_words", "unk_words", "tokens"])
    df["oov_words"] = df["split_words"] + df["unk_words"]
    return df


def _untruncated(tokenizer):
    """A copy of the fast backend with truncation and padding off: a shipped tokenizer.json may carry
    truncation (the general one cuts at 128 tokens), which would undercount long notes."""
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    return backend


def oov_summary(per_note: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per tokenizer: mean words split / [UNK] / OOV per note, tokens per note."""
    rows = []
    for name, df in per_note.items():
        rows.append({
            "tokenizer": name,
            "notes": len(df),
            "oov_words_per_note": df["oov_words"].mean(),
            "split_words_per_note": df["split_words"].mean(),
            "unk_per_note": df["unk_words"].mean(),
            "tokens_per_note": df["tokens"].mean(),
            "tokens_per_word": df["tokens"].sum() / max(df["words"].sum(), 1),
        })
    return pd.DataFrame(rows)


def token_length_quantiles(tokenizer, texts: list[str], qs=(0.5, 0.9, 0.99)) -> dict[str, float]:
    """WordPiece length quantiles of the notes (the paper: p90 about 800 tokens)."""
    lengths = np.array([len(e.ids) for e in _untruncated(tokenizer).encode_batch(texts, add_special_tokens=False)])
    return {f"p{int(q * 100)}": float(np.quantile(lengths, q)) for q in qs} | {"max": float(lengths.max())}
