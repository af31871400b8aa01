"""`python -m bertxml_lib.predict`'s request: arguments, model-folder and notes checks, the notes themselves.

Standard library only at import (pandas when notes are read), so a wrong path or a bad notes file is
reported at once, before torch and transformers load (`bertxml_lib.predict`).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
STDIN = "-"


class InputError(Exception):
    """A problem with the user's model folder or notes file (exit status 2)."""


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def build_parser(description: str = "Top-k ICD codes per note, with label-attention evidence") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bertxml_lib.predict", description=description)
    parser.add_argument("notes", help="CSV with columns note_id,text (UTF-8); - reads it from standard input")
    parser.add_argument("--model", required=True, help="a fine-tuned model folder, e.g. <out>/models/<row>")
    parser.add_argument("--top-k", type=_positive, default=5, help="codes per note (default 5)")
    parser.add_argument("--format", choices=("json", "csv"), default="json")
    parser.add_argument("--spans", type=_positive, default=3, help="evidence spans per code, attention heads only")
    parser.add_argument("--max-len", type=_positive, default=None,
                        help="segment length (default: the model's own, config.json icd_max_len)")
    parser.add_argument("--batch-size", type=_positive, default=32, help="segments per batch (speed only)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--output", "-o", default=None, help="write here (atomically) instead of stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or library messages")
    return parser


NEURAL_CONFIG = "neural_baseline.json"  # notebook 05's mha / cnn folders (models.neural.CONFIG_FILE)


def check_model_dir(model_dir: str | Path) -> Path:
    """The folder holds a saved ICD coding model: a BERT coder (config.json with icd_head/icd_codes and a
    fast tokenizer) or a neural baseline (neural_baseline.json)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: model folder not found")
    if (model_dir / NEURAL_CONFIG).is_file():
        return model_dir
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise InputError(f"{model_dir}: not a saved model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{config_file}: not readable JSON ({err})") from None
    if not config.get("icd_codes") or not config.get("icd_head"):
        raise InputError(f"{model_dir}/config.json has no icd_codes/icd_head: not an ICD coding model "
                         f"(use a fine-tuned folder <out>/models/<row>, not pretrained_<encoder>)")
    if not (model_dir / "tokenizer.json").is_file():
        raise InputError(f"{model_dir}: no tokenizer.json; the fast tokenizer is saved with every fine-tuned model")
    return model_dir


def check_request(args: argparse.Namespace) -> None:
    """Every check on paths that needs no model loaded."""
    check_model_dir(args.model)
    if args.notes != STDIN and not Path(args.notes).is_file():
        raise InputError(f"{args.notes}: notes file not found")
    if args.output and not Path(args.output).expanduser().resolve().parent.is_dir():
        raise InputError(f"{args.output}: its folder does not exist")


def read_notes(path: str | Path, stdin=None) -> tuple[list[str], list[str]]:
    """`(note_ids, texts)` from a UTF-8 CSV with columns `note_id,text` (other columns are ignored); `-` is
    standard input. A note without text (empty or whitespace) is an error naming its rows: nothing to code."""
    import numpy as np
    import pandas as pd

    if str(path) == STDIN:
        raw = (stdin or sys.stdin.buffer).read()
        path = "<stdin>"
    else:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: notes file not found")
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at line {line}); "
                         f"re-save the file as UTF-8") from None
    try:
        notes = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file; expected a header `note_id,text` and one row per note") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: not a readable CSV ({err})") from None
    missing = [c for c in ("note_id", "text") if c not in notes.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; expected `note_id,text`, "
                         f"found {list(notes.columns)}")
    if not len(notes):
        raise InputError(f"{path}: no notes (only a header)")
    ids = notes["note_id"].str.strip()
    blank = np.flatnonzero(ids.eq("").to_numpy())
    if len(blank):
        raise InputError(f"{path}: column 'note_id' is empty on data row(s) {(blank + 1).tolist()[:5]}")
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise InputError(f"{path}: column 'note_id' repeats {duplicated[:5]}; note ids must be unique")
    check_texts(notes["text"].tolist(), ids.tolist(), str(path))
    return ids.tolist(), notes["text"].tolist()


def check_texts(texts: list[str], note_ids: list[str], where: str = "notes") -> None:
    """Empty or whitespace-only notes have nothing to code: an error naming them, never silent codes."""
    empty = [i for i, t in enumerate(texts) if not str(t).strip()]
    if empty:
        raise InputError(f"{where}: column 'text' is empty or whitespace on data row(s) {[i + 1 for i in empty][:5]} "
                         f"(note_id {[note_ids[i] for i in empty][:5]}); a note needs text to be coded")
