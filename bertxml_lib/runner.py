"""`run_all.py`'s engine: plan the notebook executions of a profile, fingerprint them, run them with papermill.

It orders, caches and records; it holds no science. A job is one papermill execution of one notebook
(notebook 04 runs once per Table 2 row). A job is reused when its fingerprint — notebook source,
result-affecting parameters, library source, upstream fingerprints — is unchanged, and when the upstream
outputs on disk are still the ones it consumed: each cache record names the upstream results it read, so
an execution on other upstream outputs is never recorded under the fingerprint it would claim.

A run folder also records its data identity (`run_identity.json`: data source, input files and their
hashes, the data-shaping parameters); a run with another identity refuses to write into it.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from bertxml_lib.core import config
from bertxml_lib.core import rows as rows_mod
from bertxml_lib.core.atomic import atomic_path, read_json, write_json
from bertxml_lib.core.progress import PROGRESS_LOG_ENV
from bertxml_lib.core.provenance import data_hashes, file_hash, git_sha, package_versions
from bertxml_lib.core.warm_kernel import KernelServer

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
    result_fingerprint: str = ""   # what downstream jobs depend on (the fingerprint less render-only values)
    upstream_results: dict[str, str] = field(default_factory=dict)  # upstream job -> result fingerprint it reads
    title: str = ""                # markdown the runner adds under the notebook's title (the row it runs)

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
    config.check_values(flat)  # choices and input files: before any kernel starts (and in --dry-run)
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
    if clinical_path and not (Path(clinical_path).expanduser() / "config.json").is_file():
        raise config.ConfigError(f"04.pretrained_path={clinical_path!r}: expected a local HF checkpoint folder with "
                                 f"config.json, model weights and a tokenizer (BioBERT, clinical BERT)")
    rows = rows_mod.planned_rows(flat)

    def make(stage: str, suffix: str, runner_values: dict, upstream: list[str], title: str = "") -> Job:
        path = books[stage]
        name = path.stem + (f"-{suffix}" if suffix else "")
        params = job_params(stage, defaults[stage], flat, per_notebook.get(stage, {}), out | runner_values, path)
        return Job(name, path, params, upstream, title=title)

    jobs = [make("01", "", {}, [])]
    jobs.append(make("02", "", {}, [jobs[0].name]))
    data_jobs = [jobs[0].name, jobs[1].name]
    pretrain_jobs = {}
    continued = [rows_mod.OFFSHELF_FT] if any(r.encoder == rows_mod.OFFSHELF_FT for r in rows) else []
    for enc in list(flat["pretrain.encoders"]) + continued:
        job = make("03", enc, {"encoder": enc}, data_jobs, f"**This execution:** encoder `{enc}`.")
        pretrain_jobs[enc] = job.name
        jobs.append(job)
    finetune_jobs, baseline_jobs = [], []
    for row in rows:
        if row.notebook == "04":
            values = {"encoder": row.encoder, "variant": row.head, "max_len": row.max_len}
            if row.encoder in rows_mod.PRETRAINED_ENCODERS:
                values["pretrained_path"] = clinical_path if row.encoder == rows_mod.CLINICAL else ""
            upstream = data_jobs + ([pretrain_jobs[row.encoder]] if row.encoder in pretrain_jobs else [])
            job = make("04", row.name, values, upstream,
                       f"**This execution: Table 2 row `{row.name}`** (encoder `{row.encoder}`, head `{row.head}`, "
                       f"max_len {row.max_len}).")
            finetune_jobs.append(job.name)
        else:
            job = make("05", row.family, {"model": row.family}, data_jobs,
                       f"**This execution: Table 2 row `{row.name}`** (baseline `{row.family}`, first "
                       f"{row.max_len} words).")
            baseline_jobs.append(job.name)
        jobs.append(job)
    jobs.append(make("06", "", {}, finetune_jobs + baseline_jobs))
    jobs.append(make("07", "", {}, finetune_jobs + [jobs[-1].name]))
    # Scaling: fine-tunes the first pretrained encoder on nested training subsets; reads the cohort, not the rows.
    for first in list(flat["pretrain.encoders"])[:1]:
        jobs.append(make("08", "", {"encoder": first}, data_jobs + [pretrain_jobs[first]],
                         f"**This execution:** encoder `{first}`."))
    # Evidence plausibility, under-coding audit, subgroups, automation: reads every row's model and predictions.
    jobs.append(make("09", "", {}, finetune_jobs + baseline_jobs))

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
        job.result_fingerprint = done[job.name]
        job.upstream_results = {up: done[up] for up in job.upstream}
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
    own = {"logreg": ("baselines_C", "baselines_logreg_"), "mha": ("baselines_mha_",), "cnn": ("baselines_cnn_",)}
    others = [p for m, prefixes in own.items() if m != model for p in prefixes]
    return {k for k in job.params if k.startswith(tuple(others))}


def source_data_hash(flat: dict[str, Any]) -> str:
    """Hash of the real data files a profile reads (none for the synthetic source, which the seed fixes)."""

    return ";".join(f"{key}={digest}" for key, (_, digest) in input_files(flat).items())


def input_files(flat: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{key: (path, hash)} of the real data files and folders a profile reads (none for the synthetic source)."""
    out = {}
    for key in ("data.notes", "data.codes", "data.evidence", "data.dir"):
        value = flat.get(key) or ""
        if value and flat.get("data.source") != "synthetic" and Path(value).exists():
            out[key] = (str(Path(value).resolve()), _hash_of(str(Path(value).resolve()), *_stamp(Path(value))))
    return out


def _stamp(path: Path) -> tuple[float, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return max((p.stat().st_mtime for p in files), default=0.0), sum(p.stat().st_size for p in files)


@lru_cache(maxsize=32)
def _hash_of(path: str, mtime: float, size: int) -> str:
    """`file_hash`, once per (path, modification time, size) in a process: a real release is read once."""
    return file_hash(path)


# --- the data identity of a run folder --------------------------------------------------------------------

IDENTITY_FILE = "run_identity.json"


def data_identity(flat: dict[str, Any]) -> dict[str, Any]:
    """What makes a run folder's outputs the outputs of one data set: the source, the data-shaping parameters
    (`data.*` and the seed, which fixes the synthetic cohort and every split) and the input files' hashes."""
    params = {k: v for k, v in flat.items() if k.startswith("data.") or k == "seed"}
    files = {key: {"path": path, "sha256_16": digest} for key, (path, digest) in input_files(flat).items()}
    return {"source": flat.get("data.source", "synthetic"), "parameters": params, "files": files}


def recorded_identity(out_dir: Path) -> dict[str, Any] | None:
    """The identity a run folder holds: its `run_identity.json`, else (a folder written before identities were
    recorded) the one its `run_manifest.json` parameters give; None for a new or empty folder."""
    if (out_dir / IDENTITY_FILE).is_file():
        return read_json(out_dir / IDENTITY_FILE)
    if (out_dir / "run_manifest.json").is_file():
        flat = read_json(out_dir / "run_manifest.json").get("parameters") or {}
        params = {k: v for k, v in flat.items() if k.startswith("data.") or k == "seed"}
        return {"source": flat.get("data.source", "synthetic"), "parameters": params, "files": None}
    return None


def identity_differences(held: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Human-readable differences between a folder's identity and a run's (empty when they agree). A key one
    side lacks (a parameter added to the profiles since the folder was made) counts as its base default."""
    base = config.flatten(config.load_profiles_file()["base"])
    diffs = []
    for key in sorted(set(held["parameters"]) | set(wanted["parameters"])):
        a = held["parameters"].get(key, base.get(key, "<unset>"))
        b = wanted["parameters"].get(key, base.get(key, "<unset>"))
        if a != b:
            diffs.append(f"{key}: folder has {a!r}, this run {b!r}")
    if held.get("files") is not None:  # a folder known only from its manifest has no recorded hashes
        for key in sorted(set(held["files"]) | set(wanted["files"])):
            a, b = held["files"].get(key, {}), wanted["files"].get(key, {})
            if a.get("sha256_16") != b.get("sha256_16") and a.get("path") == b.get("path"):
                diffs.append(f"{key}: the files at {a.get('path')} changed since this folder was made "
                             f"(hash {a.get('sha256_16')} -> {b.get('sha256_16')})")
    return diffs


def check_identity(out_dir: Path, flat: dict[str, Any]) -> list[str]:
    """Differences between the folder's data identity and this run's; [] for a new folder or the same data."""
    held = recorded_identity(out_dir)
    return [] if held is None else identity_differences(held, data_identity(flat))


def write_identity(out_dir: Path, flat: dict[str, Any]) -> None:
    write_json(out_dir / IDENTITY_FILE, data_identity(flat))


def move_aside(out_dir: Path) -> Path:
    """`--force-new`: rename the folder to `<name>.replaced-<UTC time>` beside it (nothing is deleted)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir.with_name(f"{out_dir.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = out_dir.with_name(f"{out_dir.name}.replaced-{stamp}-{n}")
    out_dir.rename(target)
    return target


def cache_file(out_dir: Path, job: Job) -> Path:
    return out_dir / ".cache" / f"{job.name}.json"


def executed_path(out_dir: Path, job: Job) -> Path:
    return out_dir / "notebooks" / f"{job.name}.ipynb"


def cache_record(out_dir: Path, name: str) -> dict | None:
    """A job's cache record: {fingerprint, result_fingerprint, upstream (what it consumed), seconds,
    executed_at, producer}; None when the job never finished here."""
    path = out_dir / ".cache" / f"{name}.json"
    return read_json(path) if path.is_file() else None


def _outputs_present(out_dir: Path, job: Job, record: dict) -> bool:
    if record.get("producer") == "pretrain_cli":  # trained outside a notebook: its model folder is the output
        return (out_dir / "models" / f"pretrained_{job.params.get('encoder', '')}" / "config.json").is_file()
    return executed_path(out_dir, job).exists()


def current_results(out_dir: Path, jobs: list[Job]) -> dict[str, str]:
    """{job: result fingerprint of the outputs now on disk} for the jobs with a record and their outputs."""
    out = {}
    for job in jobs:
        record = cache_record(out_dir, job.name)
        if record and record.get("result_fingerprint") and _outputs_present(out_dir, job, record):
            out[job.name] = record["result_fingerprint"]
    return out


def is_cached(out_dir: Path, job: Job) -> bool:
    """Reusable: recorded at this fingerprint, made from the upstream results this plan expects, and those
    upstream outputs are still the ones on disk (no later execution with other parameters replaced them)."""
    record = cache_record(out_dir, job.name)
    if not record or record.get("fingerprint") != job.fingerprint or not _outputs_present(out_dir, job, record):
        return False
    if record.get("upstream") != job.upstream_results:
        return False
    for up, fp in job.upstream_results.items():
        held = cache_record(out_dir, up)
        if not held or held.get("result_fingerprint") != fp:
            return False
    return True


def stale_upstream(out_dir: Path, jobs: list[Job], selected: list[Job], force: bool) -> list[tuple[str, str]]:
    """`(job, upstream job)` pairs where a selected job would run on upstream outputs other than the ones its
    fingerprint names (missing, or made with other parameters) because that upstream job is not selected."""
    state = current_results(out_dir, jobs)
    chosen = {j.name for j in selected}
    problems = []
    for job in jobs:
        if job.name not in chosen:
            continue
        if not force and is_cached(out_dir, job):
            continue
        problems += [(job.name, up) for up, fp in job.upstream_results.items() if state.get(up) != fp]
        state[job.name] = job.result_fingerprint
    return problems


def upstream_closure(jobs: list[Job], names: list[str], out_dir: Path) -> list[str]:
    """The jobs to add to `--only` so that `names` run on current upstream outputs: every upstream job, direct
    or indirect, whose outputs on disk are not at the planned result fingerprint."""
    by_name = {j.name: j for j in jobs}
    state = current_results(out_dir, jobs)
    need: set[str] = set()
    todo = list(names)
    while todo:
        job = by_name[todo.pop()]
        for up, fp in job.upstream_results.items():
            if up not in need and (state.get(up) != fp or up in need):
                need.add(up)
                todo.append(up)
    return [j.name for j in jobs if j.name in need]


# Errors a notebook raises because of the user's input, not a bug: run_all exits 2 for them.
INPUT_ERRORS = {"DataError", "ConfigError"}


class NotebookFailed(RuntimeError):
    def __init__(self, job: Job, cell: int | None, message: str, ename: str = ""):
        super().__init__(f"{job.name} failed" + (f" in cell {cell}" if cell is not None else "") + f": {message}")
        self.job, self.cell, self.ename = job, cell, ename

    @property
    def bad_input(self) -> bool:
        return self.ename in INPUT_ERRORS


# Test hook: with BERTXML_HOLD_JOB=<job name> and BERTXML_HOLD_DIR=<folder> in the environment, that job's
# notebook gets one extra cell after its parameters that writes <folder>/ready and waits for <folder>/release,
# so a test can interrupt a running notebook at a point it controls. Unset, notebooks run as stored.
HOLD_JOB_ENV, HOLD_DIR_ENV = "BERTXML_HOLD_JOB", "BERTXML_HOLD_DIR"


def hold_point(timeout_s: float = 600.0) -> None:
    """The test hook's cell: signal readiness, then wait (in the kernel) until the test releases it."""
    folder = Path(os.environ[HOLD_DIR_ENV])
    (folder / "ready").write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout_s
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def notebook_to_execute(job: Job):
    """The notebook papermill runs: the stored one, with the row it runs in a markdown cell under its title
    (and the test hook's cell when asked for)."""
    import nbformat

    nb = nbformat.read(job.notebook, as_version=4)
    if job.title:
        cell = nbformat.v4.new_markdown_cell(job.title)
        cell.metadata["tags"] = ["run-title"]
        nb.cells.insert(1, cell)
    if os.environ.get(HOLD_JOB_ENV) == job.name and os.environ.get(HOLD_DIR_ENV):
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell("from bertxml_lib import runner\nrunner.hold_point()"))
    return nb


class _Echo(threading.Thread):
    """Echo the new lines of a job's progress log to the console while its notebook runs."""

    def __init__(self, path: Path, prefix: str):
        super().__init__(daemon=True)
        self.path, self.prefix, self.stop = path, prefix, threading.Event()

    def run(self) -> None:
        offset = 0
        while True:
            stopping = self.stop.wait(1.0)
            if self.path.exists():
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                complete = chunk[:chunk.rfind("\n") + 1]
                offset += len(complete.encode("utf-8"))
                for line in complete.splitlines():
                    print(f"{self.prefix}{line}", flush=True)
            if stopping:
                return


# What notebooks import: a warm kernel server (`core.warm_kernel`) imports these once per run. The ICD-10-CM
# package parses its code tables at import (~4 s), which every notebook that prints a description pays.
WARM_MODULES = ["pandas", "IPython.display", "ipykernel.kernelapp", "bertxml_lib.stages",
                "bertxml_lib.evaluation.analysis", "bertxml_lib.reporting.attention", "simple_icd_10_cm"]


def execute(job: Job, out_dir: Path, timeout_s: int, echo: bool = True, kernels: KernelServer | None = None) -> float:
    """Run one job with papermill into a temp file, then rename it into `notebooks/` (never half-written).

    The job is recorded in the cache only under the fingerprint of what it consumed: the upstream outputs on
    disk must be the ones its fingerprint names (`stale_upstream` refuses such runs before anything starts;
    this re-check guards the record itself). Progress bars go to `logs/<job>.log` and the console. With
    `kernels`, the notebook's kernel is forked from that server (its imports already done)."""
    import nbformat
    import papermill as pm

    consumed = {up: (cache_record(out_dir, up) or {}).get("result_fingerprint") for up in job.upstream}
    if consumed != job.upstream_results:
        wrong = sorted(up for up in job.upstream if consumed[up] != job.upstream_results[up])
        raise config.ConfigError(f"{job.name}: upstream outputs of {', '.join(wrong)} are not the ones this "
                                 f"run's parameters name; run them first")
    target = executed_path(out_dir, job)
    log = out_dir / "logs" / f"{job.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    saved = {k: os.environ.get(k) for k in (PROGRESS_LOG_ENV, "HF_HUB_DISABLE_PROGRESS_BARS")}
    # The kernel inherits these: bars to the log (core.progress), no hub/transformers bars in cell outputs.
    os.environ.update({PROGRESS_LOG_ENV: str(log), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    echoer = _Echo(log, "    | ") if echo else None
    if echoer:
        echoer.start()
    start = time.perf_counter()
    try:
        with atomic_path(target) as tmp:
            source = tmp.with_name(f"input-{target.name}")
            nbformat.write(notebook_to_execute(job), str(source))
            try:
                pm.execute_notebook(
                    str(source), str(tmp), parameters=job.params, kernel_name="python3",
                    cwd=str(REPO), execution_timeout=timeout_s, progress_bar=False,
                    **({"kernel_manager_class": kernels.manager_class()} if kernels else {}),
                )
            except pm.PapermillExecutionError as exc:
                failed = out_dir / "failed" / target.name
                failed.parent.mkdir(parents=True, exist_ok=True)
                if tmp.exists():
                    tmp.replace(failed)
                raise NotebookFailed(job, exc.exec_count, f"{exc.ename}: {exc.evalue} (executed copy: {failed})",
                                     exc.ename) from None
            finally:
                source.unlink(missing_ok=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if echoer:
            echoer.stop.set()
            echoer.join()
    seconds = time.perf_counter() - start
    write_json(cache_file(out_dir, job), {
        "fingerprint": job.fingerprint, "result_fingerprint": job.result_fingerprint, "upstream": consumed,
        "seconds": round(seconds, 2), "executed_at": now(), "producer": "run_all"})
    return seconds


def record_external(out_dir: Path, job: Job, producer: str, seconds: float) -> None:
    """Record a job whose outputs another entry point wrote (`pretrain_cli`'s model for a notebook-03 job)
    under its fingerprint, provided the upstream outputs it read are the ones the fingerprint names."""
    consumed = {up: (cache_record(out_dir, up) or {}).get("result_fingerprint") for up in job.upstream}
    if consumed != job.upstream_results:
        raise config.ConfigError(f"{job.name}: the run folder's cohort/tokenizer are not the ones this profile "
                                 f"names; run `run_all.py --only 01 02` first")
    write_json(cache_file(out_dir, job), {
        "fingerprint": job.fingerprint, "result_fingerprint": job.result_fingerprint, "upstream": consumed,
        "seconds": round(seconds, 2), "executed_at": now(), "producer": producer})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


HISTORY_LIMIT = 20


def write_manifest(out_dir: Path, profile: str, flat: dict, jobs: list[Job], statuses: dict[str, dict],
                   total_seconds: float) -> dict:
    """Provenance of the run: git sha, package versions, parameters, data and split hashes, durations.

    Each notebook keeps its history across runs: `last_execution` (when and how long its cached outputs took
    to make, from the cache record) and `reused_at` (when runs reused them), so a cached rerun never hides
    the real durations; `runs` lists the last runs into this folder."""
    previous = read_json(out_dir / "run_manifest.json") if (out_dir / "run_manifest.json").is_file() else {}
    before = {n["name"]: n for n in previous.get("notebooks", [])}
    stamp = now()
    entries = []
    for j in jobs:
        entry = {"name": j.name, "fingerprint": j.fingerprint,
                 "params": {k: v for k, v in j.params.items() if k != "out_dir"}}
        entry |= statuses.get(j.name, {"status": "not run"})
        record = cache_record(out_dir, j.name)
        if record:
            entry["last_execution"] = {"at": record.get("executed_at"), "seconds": record.get("seconds"),
                                       "fingerprint": record.get("fingerprint"),
                                       "producer": record.get("producer", "run_all")}
        old = before.get(j.name, {})
        reused = list(old.get("reused_at", [])) if old.get("fingerprint") == j.fingerprint else []
        if entry["status"] == "cached":
            reused.append(stamp)
        entry["reused_at"] = reused[-HISTORY_LIMIT:]
        entries.append(entry)
    counts = {s: sum(e["status"] == s for e in entries) for s in ("executed", "cached", "failed")}
    runs = list(previous.get("runs", [])) + [{"at": stamp, "profile": profile, "total_seconds": round(total_seconds, 2),
                                               **counts}]
    manifest = {
        "profile": profile,
        "git_sha": git_sha(REPO),
        "packages": package_versions(),
        "parameters": flat,
        "seed": flat["seed"],
        "data": data_hashes(out_dir),
        "identity": data_identity(flat),
        "notebooks": entries,
        "total_seconds": round(total_seconds, 2),
        "runs": runs[-HISTORY_LIMIT:],
    }
    write_json(out_dir / "run_manifest.json", manifest)
    return manifest
