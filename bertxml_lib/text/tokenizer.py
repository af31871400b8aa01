"""Notebook 02 — EHR WordPiece vocabulary trained on the training notes (paper 3.2, 4.2.1) and OOV statistics."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertTokenizerFast

from bertxml_lib.core.atomic import atomic_path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _normalizer() -> normalizers.Normalizer:
    return normalizers.BertNormalizer(lowercase=True, clean_text=True, handle_chinese_chars=True, strip_accents=None)


def _wordpiece_tokenizer(model: models.WordPiece) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def continuation_alphabet(texts: Sequence[str]) -> list[str]:
    """`##c` for every non-space character of the normalised texts, sorted."""
    normalizer, chars = _normalizer(), set()
    for text in texts:
        chars.update(normalizer.normalize_str(text))
    return sorted("##" + c for c in chars if not c.isspace())


def train_wordpiece(texts: Sequence[str], vocab_size: int, min_frequency: int, out_dir: str | Path) -> BertTokenizerFast:
    """Train an uncased BERT WordPiece vocabulary with `tokenizers` and save it so
    `AutoTokenizer.from_pretrained(out_dir)` loads it. Pass TRAINING notes only (leakage guard).

    Deterministic: `tokenizers`' trainer numbers the `##c` continuation tokens in hash-map order, which
    changes from run to run, and those ids break ties between equally frequent merges (huggingface/tokenizers
    #1794: same notes, a different vocabulary every run). Registering every `##c` up front, sorted, as a
    trainer special token fixes their ids; the saved tokenizer is then rebuilt from the learnt vocabulary with
    only BERT's five special tokens, so `##c` are ordinary vocabulary entries."""
    texts = list(texts)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + continuation_alphabet(texts), continuing_subword_prefix="##",
        show_progress=False,
    )
    trained = _wordpiece_tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    trained.train_from_iterator(texts, trainer=trainer)
    tok = _wordpiece_tokenizer(models.WordPiece(trained.get_vocab(with_added_tokens=True), unk_token="[UNK]",
                                                max_input_chars_per_word=100))
    tok.add_special_tokens(SPECIAL_TOKENS)
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
