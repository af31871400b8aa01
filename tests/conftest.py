"""Shared fixtures: tiny cohorts built by hand, a tiny tokenizer, paths to the repo."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def hand_notes() -> pd.DataFrame:
    """Two patients, five notes, dates chosen so the imputation rule can be checked by hand."""
    return pd.DataFrame({
        "patient_id": ["p1", "p1", "p1", "p1", "p2"],
        "note_id": ["n1", "n2", "n3", "n4", "n5"],
        "note_date": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01", "2020-01-15"]),
        "note_type": ["progress note"] * 5,
        "text": ["x" * 60] * 5,
    })


TOY_WORDS = "alpha beta gamma delta patient pain right hip fracture chest cough fever history".split()


def make_toy_tokenizer():
    """A WordPiece tokenizer trained on 50 toy sentences, wrapped as an HF fast tokenizer (shared by the
    segment, modeling and fine-tuning tests)."""
    import random

    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    rng = random.Random(0)
    sentences = [" ".join(rng.choice(TOY_WORDS) for _ in range(8)) for _ in range(50)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(
        vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    return transformers.BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                          cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
