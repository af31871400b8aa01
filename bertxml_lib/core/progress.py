"""Progress bars and library load reports that stay out of executed notebooks (shared by every stage).

Bars are plain `tqdm` (never `tqdm.auto`, which wants ipywidgets in a kernel). Where they go:
- `run_all.py` sets `BERTXML_PROGRESS_LOG` for each notebook it executes: bars are appended to that log as
  one line per update, and the runner echoes the log's new lines to its console; the cell outputs stay clean;
- otherwise (a CLI, a notebook opened by hand) they go to standard error, as tqdm's own.

`quiet_load(loader, ...)` loads a transformers checkpoint whose leftover weights are expected (an MLM
head, a pooler) without transformers' coloured LOAD REPORT, and fails loudly on anything unexpected.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, Iterable

from tqdm.std import tqdm

PROGRESS_LOG_ENV = "BERTXML_PROGRESS_LOG"


class _LineFile:
    """A text file that turns tqdm's carriage-return redraws into one plain line per update."""

    def __init__(self, path: str):
        self._fh = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> int:
        text = text.replace("\r", "\n")
        lines = [line.strip() for line in text.split("\n")]
        out = "".join(line + "\n" for line in lines if line)
        self._fh.write(out)
        return len(text)

    def flush(self) -> None:
        self._fh.flush()


_log_file: _LineFile | None = None


def progress_target():
    """Where bars are written: the runner's progress log, else standard error."""
    global _log_file
    path = os.environ.get(PROGRESS_LOG_ENV)
    if not path:
        return sys.stderr
    if _log_file is None or _log_file._fh.name != path:
        _log_file = _LineFile(path)
    return _log_file


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` written to `progress_target()`; every tqdm keyword is accepted."""
    target = progress_target()
    kwargs.setdefault("mininterval", 5)
    if target is not sys.stderr:
        kwargs.update(file=target, ascii=True, ncols=100, dynamic_ncols=False)
    return tqdm(iterable, **kwargs)


def quiet_load(loader: Callable, *args: Any, expected_unused: tuple[str, ...] = (), **kwargs: Any):
    """`loader(*args, **kwargs)` (a transformers `from_pretrained`) without its load report.

    Checkpoint weights the model does not use are allowed when their names start with one of
    `expected_unused` (an MLM head `cls.`, a `pooler.`); any other unused weight, and any weight the
    model needs but the checkpoint lacks, is a ValueError naming the keys."""
    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("transformers")
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = loader(*args, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
        logger.setLevel(level)
    unexpected = [k for k in info.get("unexpected_keys", []) if not str(k).startswith(expected_unused)]
    missing = list(info.get("missing_keys", []))
    if unexpected or missing:
        raise ValueError(f"{args[0] if args else ''}: checkpoint does not match the model "
                         f"(unused weights {sorted(unexpected)[:5]}, missing weights {sorted(missing)[:5]})")
    return model
