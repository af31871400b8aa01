"""Where every stage reads and writes under a run's output folder (shared by all notebooks)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """The fixed layout of `results/<profile>/` that notebooks, `run_all.py` and tests agree on."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def cohort_dir(self) -> Path:
        return self.root / "cohort"

    @property
    def cohort_notes(self) -> Path:
        return self.cohort_dir / "notes.parquet"

    @property
    def label_set(self) -> Path:
        return self.cohort_dir / "label_set.json"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def truth(self) -> Path:
        """The synthetic generator's ground truth: spans it wrote per (note, code) (`synthetic.load_truth`)."""
        return self.raw_dir / "truth.parquet"

    @property
    def token_cache_dir(self) -> Path:
        """Cached token ids of the notes, one `.npz` per (tokenizer, notes) (`token_cache`); safe to delete."""
        return self.root / "cache" / "tokens"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def pretrained_dir(self, encoder: str) -> Path:
        """The MLM-pretrained EHR BERT of one Table 1 configuration (`tiny`, `mini`, `small`, `big`)."""
        return self.models_dir / f"pretrained_{encoder}"

    def model_dir(self, row: str) -> Path:
        return self.models_dir / row

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    def predictions_file(self, row: str) -> Path:
        return self.predictions_dir / f"{row}.npz"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    def metrics_file(self, row: str) -> Path:
        return self.metrics_dir / f"{row}.json"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    def table(self, name: str) -> Path:
        return self.tables_dir / name

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    def figure(self, name: str) -> Path:
        return self.figures_dir / name

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def manifest(self) -> Path:
        return self.root / "run_manifest.json"
