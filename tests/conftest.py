"""Shared fixtures: tiny cohorts built by hand, a tiny tokenizer, paths to the repo."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock

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


def run_all(out: Path, *args: str, profile: str = "ci", timeout: int = 1800) -> dict:
    """`run_all.py --profile <profile> --out <out> <args>`; asserts exit 0 and returns the run manifest."""
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", profile, "--out", str(out), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((Path(out) / "run_manifest.json").read_text())


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory, worker_id) -> tuple[Path, dict]:
    """The end-to-end tier's one whole-suite run of the `ci` profile, shared by every test that reads a
    finished run. Tests that change a run folder work on a copy (`copy_run`).

    Under pytest-xdist (`make test`: two workers, `--dist loadfile`) the workers share one run: the first to
    ask makes it under a file lock in the session's common temp folder, the other waits and reads it."""
    finished = os.environ.get("BERTXML_TEST_CI_RUN")  # a developer's finished ci run, reused as a copy
    if finished:
        out = tmp_path_factory.mktemp("ci")
        shutil.copytree(finished, out, symlinks=True, dirs_exist_ok=True)
        return out, json.loads((out / "run_manifest.json").read_text())
    if worker_id == "master":  # no xdist
        out = tmp_path_factory.mktemp("ci")
        return out, run_all(out)
    out = tmp_path_factory.getbasetemp().parent / "ci_shared"
    with FileLock(f"{out}.lock"):
        if not (out / "run_manifest.json").exists():
            run_all(out)
    return out, json.loads((out / "run_manifest.json").read_text())


def process_alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a finished run folder that a test may change (symlinks kept, so the copy stays cheap)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def figure_texts(fig) -> str:
    """Every text a matplotlib figure draws (titles, axis labels, tick labels, legend entries), joined."""
    from matplotlib.text import Text

    return " | ".join(t.get_text() for t in fig.findobj(Text) if t.get_text())


def assert_png_figure(path: Path, fig=None, contains: tuple[str, ...] = (), min_px: int = 200) -> None:
    """A written figure: a PNG at least `min_px` on each side that is not blank, and (given the Figure) whose
    drawn texts include every string of `contains`."""
    import matplotlib.image as mpimg
    import numpy as np

    image = mpimg.imread(str(path), format="png")
    assert image.shape[0] >= min_px and image.shape[1] >= min_px, image.shape
    assert float(np.asarray(image[..., :3]).std()) > 0.01, f"{path} is blank"
    if fig is not None:
        drawn = figure_texts(fig)
        missing = [c for c in contains if c not in drawn]
        assert not missing, f"{path}: {missing} not drawn; the figure shows: {drawn[:500]}"

