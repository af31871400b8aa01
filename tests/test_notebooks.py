"""Notebooks stay thin and consistent with the one config source."""
import json

import pytest

from bertxml_lib import runner
from bertxml_lib.core import config

BOOKS = runner.notebook_paths()


def test_seven_numbered_notebooks():
    assert sorted(BOOKS) == ["01", "02", "03", "04", "05", "06", "07"]


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


def test_every_profile_key_is_used_by_a_notebook_or_the_runner():
    used = set()
    for path in BOOKS.values():
        used |= set(runner.notebook_parameters(path))
    runner_keys = {"pretrain.encoders", "finetune.variants", "finetune.max_lens", "run.timeout_s", "offshelf.rows",
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
