"""A pretraining run killed with SIGKILL after a checkpoint resumes to exactly the uninterrupted losses."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from bertxml_lib.text.tokenizer import train_wordpiece

REPO = Path(__file__).resolve().parent.parent
PAIRS = [("hypertension", "lisinopril"), ("dm2", "metformin"), ("htn", "lisinopril"), ("ldl", "atorvastatin")]
FILLER = "patient denies chest pain review of systems no fever cough assessment plan follow up labs a1c".split()


def write_corpus(folder: Path, n_notes: int, seed: int = 0) -> tuple[Path, Path]:
    """A JSON file of train/dev notes with structure (a drug follows its condition) and a tokenizer on them."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n_notes):
        parts = [f"{c} on {d} . denies {rng.choice(FILLER)} ." for c, d in (rng.choice(PAIRS) for _ in range(rng.randint(3, 40)))]
        texts.append(" ".join(parts))
    cut = int(0.8 * n_notes)
    texts_file = folder / "texts.json"
    texts_file.write_text(json.dumps({"train": texts[:cut], "dev": texts[cut:]}))
    train_wordpiece(texts[:cut], 200, 2, folder / "tok")
    return texts_file, folder / "tok"


def cli(texts: Path, tok: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bertxml_lib.pretrain_cli", "--texts", str(texts), "--tokenizer", str(tok),
            "--out", str(out), "--encoder", "tiny", "--max-len", "64", "--epochs", "3", "--batch-tokens", "512",
            "--lr", "2e-3", "--seed", "5", "--device", "cpu", "--quiet", *extra]


ENV = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def curve_rows(path: Path) -> list[tuple]:
    return [(r["step"], r["epoch"], r["split"], r["loss"]) for r in json.loads(path.read_text())]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    texts, tok = write_corpus(tmp_path, 120)
    ckpt = tmp_path / "ckpt"
    # Dropout stays on (0.1): resuming must restore the dropout RNG as well as the masking generator.
    proc = subprocess.Popen(cli(texts, tok, tmp_path / "killed", "--checkpoint-dir", str(ckpt),
                                "--checkpoint-every", "7"), cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (ckpt / "checkpoint.pt").exists():
        assert proc.poll() is None, f"training ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (tmp_path / "killed").exists(), "the run finished before the kill; nothing was interrupted"
    killed_at = torch.load(ckpt / "checkpoint.pt", weights_only=False)["step"]
    assert killed_at >= 7 and killed_at % 7 == 0

    subprocess.run(cli(texts, tok, tmp_path / "resumed", "--checkpoint-dir", str(ckpt), "--checkpoint-every", "7",
                       "--resume"), cwd=REPO, env=ENV, check=True, capture_output=True)
    subprocess.run(cli(texts, tok, tmp_path / "straight"), cwd=REPO, env=ENV, check=True, capture_output=True)

    resumed = json.loads((tmp_path / "resumed" / "pretrain_config.json").read_text())
    assert resumed["resumed_from_step"] == killed_at
    straight, again = curve_rows(tmp_path / "straight" / "loss_curve.json"), curve_rows(tmp_path / "resumed" / "loss_curve.json")
    assert straight[-1][0] > killed_at + 7, "the resumed part should span several checkpoints and an epoch end"
    assert again == straight  # exact: same loss at every step, dev losses included
