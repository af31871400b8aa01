"""`run_all.py`'s engine: plan the notebook executions of a profile, fingerprint them, run them with papermill.

It orders, caches and records; it holds no science. A job is one papermill execution of one notebook
(notebook 04 runs once per Table 2 row). A job is reused when its fingerprint — notebook source,
result-affecting parameters, library source, upstream fingerprints — is unchanged.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertxml_lib.core import config
from bertxml_lib.core import rows as rows_mod
from bertxml_lib.core.atomic import atomic_path, read_json, write_json
from bertxml_lib.core.provenance import data_hashes, file_hash, git_sha, package_versions

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
LIBRARY_DIR = Path(__file__).resolve().parent


@dataclass
class Job:
    name: str                 # e.g. "04_finetuning-ehr_mini_xml_1024"
    notebook: Path
    params: dict[str, Any]
    upstream: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def stage(self) -> str:
        return self.notebook.stem[:2]


def notebook_paths() -> dict[str, Path]:
    """{'01': notebooks/01_cohort.ipynb, ...}"""
    return {p.stem[:2]: p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))}


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The literals of a notebook's `parameters` cell (evaluated safely, no kernel)."""
    import ast

    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise config.ConfigError(f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    params: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            params[node.targets[0].id] = ast.literal_eval(node.value)
    return params


def library_hash() -> str:
    """Hash of the library's code and packaged data: a library change invalidates every cached job."""
    h = hashlib.sha256()
    for p in sorted(LIBRARY_DIR.rglob("*")):
        if p.is_file() and p.suffix in {".py", ".csv", ".json", ".yaml"} and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(LIBRARY_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def job_params(stage: str, defaults: dict[str, Any], flat: dict[str, Any],
               per_notebook: dict[str, Any], runner_values: dict[str, Any], path: Path) -> dict[str, Any]:
    """Map the resolved profile onto one notebook's declared parameters."""
    by_param = {config.param_name(k): k for k in flat}
    params: dict[str, Any] = {}
    for name in defaults:
        if name in config.RUNNER_PARAMS:
            if name in runner_values:
                params[name] = runner_values[name]
        elif name in by_param:
            params[name] = flat[by_param[name]]
        else:
            raise config.ConfigError(f"{path}: parameter {name!r} is not a key of configs/profiles.yaml")
    for key, value in per_notebook.items():
        name = config.param_name(key)
        if name not in defaults:
            raise config.ConfigError(f"--set {stage}.{key}: notebook {path.name} has no parameter {name!r}")
        base = {key: flat[key]} if key in flat else {key: defaults[name]}
        params[name] = config.check_override(key, value, base)
    return params


def plan(profile: str, out_dir: Path, global_sets: dict[str, Any], per_notebook: dict[str, dict[str, Any]]) -> tuple[list[Job], dict[str, Any]]:
    """All jobs of a profile in execution order, with parameters and fingerprints."""
    flat = config.resolve(profile, global_sets)
    # `auto` becomes what it means for this data source, so notebooks, fingerprints and the manifest see a bool.
    flat["render.show_text"] = config.resolve_show_text(flat["render.show_text"], flat["data.source"])
    books = notebook_paths()
    unknown = sorted(set(per_notebook) - set(books))
    if unknown:
        raise config.ConfigError(f"--set names notebook(s) {unknown}; notebooks are {sorted(books)}")
    defaults = {stage: notebook_parameters(p) for stage, p in books.items()}
    out = {"out_dir": str(out_dir.resolve())}
    per_notebook = {stage: dict(values) for stage, values in per_notebook.items()}
    # The local BioBERT / clinical checkpoint reaches the clinical row only (other rows keep their cache).
    clinical_path = str(per_notebook.get("04", {}).pop("pretrained_path", ""))
    rows = rows_mod.planned_rows(flat)

    def make(stage: str, suffix: str, runner_values: dict, upstream: list[str]) -> Job:
        path = books[stage]
        name = path.stem + (f"-{suffix}" if suffix else "")
        params = job_params(stage, defaults[stage], flat, per_notebook.get(stage, {}), out | runner_values, path)
        return Job(name, path, params, upstream)

    jobs = [make("01", "", {}, [])]
    jobs.append(make("02", "", {}, [jobs[0].name]))
    data_jobs = [jobs[0].name, jobs[1].name]
    pretrain_jobs = {}
    continued = [rows_mod.OFFSHELF_FT] if any(r.encoder == rows_mod.OFFSHELF_FT for r in rows) else []
    for enc in list(flat["pretrain.encoders"]) + continued:
        job = make("03", enc, {"encoder": enc}, data_jobs)
        pretrain_jobs[enc] = job.name
        jobs.append(job)
    finetune_jobs, baseline_jobs = [], []
    for row in rows:
        if row.notebook == "04":
            values = {"encoder": row.encoder, "variant": row.head, "max_len": row.max_len}
            if row.encoder in rows_mod.PRETRAINED_ENCODERS:
                values["pretrained_path"] = clinical_path if row.encoder == rows_mod.CLINICAL else ""
            upstream = data_jobs + ([pretrain_jobs[row.encoder]] if row.encoder in pretrain_jobs else [])
            job = make("04", row.name, values, upstream)
            finetune_jobs.append(job.name)
        else:
            job = make("05", row.family, {"model": row.family}, data_jobs)
            baseline_jobs.append(job.name)
        jobs.append(job)
    jobs.append(make("06", "", {}, finetune_jobs + baseline_jobs))
    jobs.append(make("07", "", {}, finetune_jobs + [jobs[-1].name]))

    speed = {config.param_name(k) for k in config.speed_only_keys()} | {"out_dir"}
    render = {config.param_name(k) for k in config.render_only_keys()}
    lib = library_hash()
    data = source_data_hash(flat)
    done: dict[str, str] = {}
    for job in jobs:
        h = hashlib.sha256()
        h.update(job.notebook.read_bytes())
        if not job.upstream:
            h.update(data.encode())
        unused = unused_params(job)
        h.update(json.dumps({k: v for k, v in job.params.items() if k not in speed | render | unused},
                            sort_keys=True).encode())
        h.update(lib.encode())
        for up in job.upstream:
            h.update(done[up].encode())
        done[job.name] = h.hexdigest()[:20]  # what downstream jobs depend on: results only
        # Render-only parameters (render.show_text) re-execute this job when changed, not its downstream jobs.
        shown = {k: v for k, v in job.params.items() if k in render}
        job.fingerprint = (hashlib.sha256((done[job.name] + json.dumps(shown, sort_keys=True)).encode()).hexdigest()[:20]
                           if shown else done[job.name])
    return jobs, flat


def unused_params(job: Job) -> set[str]:
    """Parameters a job receives but its row never reads (other baselines' settings in a notebook-05 job):
    left out of its fingerprint, so tuning the MHA baseline does not re-run the CNN."""
    model = job.params.get("model")
    if not model:
        return set()
    own = {"logreg": ("baselines_C",), "mha": ("baselines_mha_",), "cnn": ("baselines_cnn_",)}
    others = [p for m, prefixes in own.items() if m != model for p in prefixes]
    return {k for k in job.params if k.startswith(tuple(others))}


def source_data_hash(flat: dict[str, Any]) -> str:
    """Hash of the real data files a profile reads (none for the synthetic source, which the seed fixes)."""

    parts = []
    for key in ("data.notes", "data.codes", "data.dir"):
        value = flat.get(key) or ""
        if value and flat.get("data.source") != "synthetic" and Path(value).exists():
            parts.append(f"{key}={file_hash(value)}")
    return ";".join(parts)


def cache_file(out_dir: Path, job: Job) -> Path:
    return out_dir / ".cache" / f"{job.name}.json"


def executed_path(out_dir: Path, job: Job) -> Path:
    return out_dir / "notebooks" / f"{job.name}.ipynb"


def is_cached(out_dir: Path, job: Job) -> bool:
    marker = cache_file(out_dir, job)
    if not marker.exists() or not executed_path(out_dir, job).exists():
        return False
    return read_json(marker).get("fingerprint") == job.fingerprint


# Errors a notebook raises because of the user's input, not a bug: run_all exits 2 for them.
INPUT_ERRORS = {"DataError", "ConfigError"}


class NotebookFailed(RuntimeError):
    def __init__(self, job: Job, cell: int | None, message: str, ename: str = ""):
        super().__init__(f"{job.name} failed" + (f" in cell {cell}" if cell is not None else "") + f": {message}")
        self.job, self.cell, self.ename = job, cell, ename

    @property
    def bad_input(self) -> bool:
        return self.ename in INPUT_ERRORS


def execute(job: Job, out_dir: Path, timeout_s: int) -> float:
    """Run one job with papermill into a temp file, then rename it into `notebooks/` (never half-written)."""
    import papermill as pm

    target = executed_path(out_dir, job)
    start = time.perf_counter()
    with atomic_path(target) as tmp:
        try:
            pm.execute_notebook(
                str(job.notebook), str(tmp), parameters=job.params, kernel_name="python3",
                cwd=str(REPO), execution_timeout=timeout_s, progress_bar=False,
            )
        except pm.PapermillExecutionError as exc:
            failed = out_dir / "failed" / target.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                tmp.replace(failed)
            raise NotebookFailed(job, exc.exec_count, f"{exc.ename}: {exc.evalue} (executed copy: {failed})",
                                 exc.ename) from None
    seconds = time.perf_counter() - start
    write_json(cache_file(out_dir, job), {"fingerprint": job.fingerprint, "seconds": round(seconds, 2)})
    return seconds


def select(jobs: list[Job], only: list[str] | None, start_from: str | None) -> list[Job]:
    """`--only` (job or notebook prefixes, e.g. `04` or `04_finetuning-ehr_mini_xml_512`) and `--from`."""
    chosen = jobs
    if start_from:
        idx = [i for i, j in enumerate(jobs) if j.name.startswith(start_from)]
        if not idx:
            raise config.ConfigError(f"--from {start_from!r} matches no notebook; see --list")
        chosen = jobs[idx[0]:]
    if only:
        chosen = [j for j in chosen if any(j.name.startswith(o) for o in only)]
        if not chosen:
            raise config.ConfigError(f"--only {only} matches no notebook; see --list")
    return chosen


def write_manifest(out_dir: Path, profile: str, flat: dict, jobs: list[Job], statuses: dict[str, dict],
                   total_seconds: float) -> dict:
    """Provenance of the run: git sha, package versions, parameters, data and split hashes, durations."""

    manifest = {
        "profile": profile,
        "git_sha": git_sha(REPO),
        "packages": package_versions(),
        "parameters": flat,
        "seed": flat["seed"],
        "data": data_hashes(out_dir),
        "notebooks": [
            {"name": j.name, "fingerprint": j.fingerprint, "params": {k: v for k, v in j.params.items() if k != "out_dir"}}
            | statuses.get(j.name, {"status": "not run"})
            for j in jobs
        ],
        "total_seconds": round(total_seconds, 2),
    }
    write_json(out_dir / "run_manifest.json", manifest)
    return manifest
