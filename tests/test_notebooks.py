"""Notebooks stay thin and consistent with the one config source."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, copy_run

from bertxml_lib import runner
from bertxml_lib.core import config

BOOKS = runner.notebook_paths()


def test_seven_numbered_notebooks():
    assert sorted(BOOKS) == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("stage", sorted(BOOKS))
def test_stored_without_outputs_with_one_parameters_cell(stage):
    nb = json.loads(BOOKS[stage].read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# " + stage)


@pytest.mark.parametrize("stage", sorted(BOOKS))
def test_parameter_defaults_are_the_quick_profile(stage):
    flat = config.resolve("quick")
    by_param = {config.param_name(k): v for k, v in flat.items()}
    for name, value in runner.notebook_parameters(BOOKS[stage]).items():
        if name in config.RUNNER_PARAMS:
            continue
        assert name in by_param, f"{stage}: {name} is not a profile key"
        assert value == by_param[name], f"{stage}: {name}={value!r} but quick profile has {by_param[name]!r}"


@pytest.mark.parametrize("stage", sorted(BOOKS))
def test_runner_set_defaults_are_one_execution_of_the_quick_profile(stage):
    """`encoder`, `variant`, `max_len`, `model`, `out_dir` default to what run_all.py gives one execution of the
    quick profile (notebooks 03/04 once defaulted to encoder 'mini', which quick never pretrains)."""
    stored = runner.notebook_parameters(BOOKS[stage])
    assert stored["out_dir"] == "results/quick"
    jobs = [j for j in runner.plan("quick", REPO / "results" / "quick", {}, {})[0] if j.stage == stage]
    runner_set = {k: v for k, v in stored.items() if k in config.RUNNER_PARAMS and k != "out_dir"}
    assert any(all(job.params.get(k, v) == v for k, v in runner_set.items()) for job in jobs), (stage, runner_set)


@pytest.mark.parametrize("stage", sorted(BOOKS))
def test_every_parameter_has_a_comment_papermill_can_parse(stage):
    from papermill.inspection import _infer_parameters, _open_notebook

    nb = _open_notebook(str(BOOKS[stage]), {})
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for line in cell.source.splitlines()[1:]:
        value, _, comment = line.partition("  # ")
        assert comment.strip() and "=" not in comment, f"{stage}: {line!r} needs a short comment without '='"
    inferred = {p.name: p.help for p in _infer_parameters(nb)}
    assert sorted(inferred) == sorted(runner.notebook_parameters(BOOKS[stage]))  # papermill reads every line
    assert all(inferred.values())


@pytest.mark.parametrize("stage", sorted(BOOKS))
def test_out_dir_is_resolved_against_the_repository_not_the_kernel_directory(stage):
    nb = nbformat.read(BOOKS[stage], as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert nb.cells[at + 1].source.startswith("out_dir = config.resolve_out_dir(out_dir)")
    assert "from bertxml_lib.core import config" in nb.cells[1].source


def test_resolve_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert config.resolve_out_dir("results/quick") == str(REPO / "results" / "quick")
    assert config.resolve_out_dir(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("stage, png", [("01", "cohort_overview.png"), ("02", "oov_per_note.png")])
def test_figures_of_01_and_02_are_displayed(stage, png):
    source = "".join(c.source for c in nbformat.read(BOOKS[stage], as_version=4).cells if c.cell_type == "code")
    assert f"display(Image(filename=str(RunPaths(out_dir).figure('{png}'))))" in source


def test_make_lab_starts_jupyterlab_with_the_projects_kernel():
    proc = subprocess.run(["make", "-n", "lab"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert ".venv/bin/python -m ipykernel install --sys-prefix --name python3" in proc.stdout
    assert ".venv/bin/jupyter lab" in proc.stdout


# --- executed notebooks: against a finished run, as a new user opens them, and as run_all leaves them ---------

# Each notebook with its stored defaults, in an order where each finds a finished run: the readers first
# (06, 07), then the trainers (05, 04, 03), then the notebooks whose outputs everything downstream reads.
LAB_ORDER = ["06", "07", "05", "04", "03", "02", "01"]
# The one departure from the stored defaults besides `out_dir`: the training notebooks train for one epoch, so
# the test stays short (their encoder, head, max_len, model and every other default are the stored ones).
LAB_SHORT = {"03": {"pretrain_epochs": 1}, "04": {"finetune_epochs": 1},
             "05": {"baselines_mha_epochs": 1, "baselines_mha_starspace_epochs": 1}}


@pytest.fixture(scope="module")
def lab_run(ci_run, tmp_path_factory):
    """A copy of the finished ci run, reachable from the repository as the relative path `results/<name>`."""
    run = copy_run(ci_run[0], tmp_path_factory.mktemp("lab") / "run")
    link = REPO / "results" / f".lab-test-{os.getpid()}"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(run)
    yield link.relative_to(REPO), run
    link.unlink()


@pytest.mark.e2e
@pytest.mark.parametrize("stage", LAB_ORDER)
def test_a_notebook_opened_from_notebooks_runs_top_to_bottom_with_its_defaults(lab_run, stage, tmp_path):
    """As JupyterLab runs it: kernel working directory `notebooks/`, every stored default, only `out_dir` a
    relative path (like the stored `results/quick`) naming a finished run."""
    import papermill as pm

    relative, run = lab_run
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (os.path.join(sys.prefix, "share", "jupyter"),
                                                              os.environ.get("JUPYTER_PATH", "")) if p)
    pm.execute_notebook(str(BOOKS[stage]), str(tmp_path / "out.ipynb"), parameters={"out_dir": str(relative), **LAB_SHORT.get(stage, {})},
                        cwd=str(REPO / "notebooks"), kernel_name="python3", progress_bar=False)
    assert not (REPO / "notebooks" / "results").exists()  # nothing built inside notebooks/
    done = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert all(o.get("output_type") != "error" for c in done.cells if c.cell_type == "code" for o in c.outputs)


def _outputs(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return "\n".join(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))


@pytest.mark.e2e
def test_executed_notebooks_read_cleanly(ci_run):
    """No progress-bar frames, ANSI escapes, or library warnings in cell outputs; figures shown; each 03/04/05
    execution titled with what it ran."""
    out, manifest = ci_run
    executed = sorted((out / "notebooks").glob("*.ipynb"))
    assert {n["name"] for n in manifest["notebooks"]} <= {p.stem for p in executed} and len(executed) >= 10
    for path in executed:
        texts = "\n".join(_text(o) for o in _outputs(path))
        assert "\x1b" not in texts, path.name
        assert "IProgress" not in texts and "Warning" not in texts and "LOAD REPORT" not in texts, path.name
        assert not re.search(r"\d+%\|", texts) and "it/s]" not in texts and "s/it]" not in texts, path.name
        if path.name.startswith(("03_", "04_", "05_")):
            title = nbformat.read(path, as_version=4).cells[1]
            assert "run-title" in title.metadata.get("tags", []) and path.stem.split("-", 1)[1] in title.source
    for name in ("01_cohort", "02_tokenizer"):
        assert any("image/png" in o.get("data", {}) for o in _outputs(out / "notebooks" / f"{name}.ipynb")), name
    logs = out / "logs"
    assert "epoch" in (logs / "04_finetuning-ehr_tiny_xml_512.log").read_text()  # progress went to the log


def test_every_profile_key_is_used_by_a_notebook_or_the_runner():
    used = set()
    for path in BOOKS.values():
        used |= set(runner.notebook_parameters(path))
    runner_keys = {"pretrain.encoders", "finetune.variants", "finetune.max_lens", "run.timeout_s", "run.warm_kernels", "offshelf.rows",
                   "finetune.extra_heads", "baselines.models"}
    unused = [k for k in config.resolve("quick") if config.param_name(k) not in used and k not in runner_keys]
    assert unused == []


@pytest.mark.parametrize("stage", sorted(BOOKS))
def test_notebooks_define_no_functions_or_loops(stage):
    nb = json.loads(BOOKS[stage].read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            assert "def " not in src and "class " not in src and "\nfor " not in src and not src.startswith("for ")
