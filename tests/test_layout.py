"""The package layout: stage subpackages, imports that flow one way (no cycles), no history in the code."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "bertxml_lib"
STAGES = ("core", "data", "text", "models", "training", "evaluation", "inference", "reporting", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(path: Path) -> set[str]:
    """Every `bertxml_lib` module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bertxml_lib"):
            for alias in node.names:  # `from bertxml_lib.data import icd` names a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (REPO / (candidate.replace(".", "/") + ".py")).exists() else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bertxml_lib"))
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): internal_imports(p) for p in PACKAGE.rglob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_hand_made_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_package_internal_imports_sit_at_module_top():
    """Imports inside functions hide the dependency graph; only the CLI's deferred heavy import may do it."""
    inside = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bertxml_lib") and id(node) not in top:
                inside.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert inside == []


def test_every_stage_has_its_subpackage_and_the_top_level_holds_only_entry_points():
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "predict", "pretrain_cli", "runner", "stages"]


def test_lower_layers_never_import_higher_ones():
    """core <- data <- text <- models <- training/evaluation/inference <- reporting <- runner."""
    rank = {"core": 0, "data": 1, "text": 2, "models": 3, "training": 4, "evaluation": 4, "inference": 4,
            "reporting": 5, "bench": 6}
    wrong = []
    for module, deps in import_graph().items():
        own = module.split(".")[1] if module.count(".") >= 1 else ""
        for dep in deps:
            other = dep.split(".")[1] if dep.count(".") >= 1 else ""
            if own in rank and other in rank and rank[other] > rank[own]:
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


HISTORY = re.compile(r"\bissues? ?#?\d+\b", re.IGNORECASE)


def test_no_issue_numbers_in_code_tests_or_docs():
    """Comments say what code does and which paper section it reproduces, never the history behind it."""
    paths = [*PACKAGE.rglob("*.py"), *(REPO / "tests").glob("*.py"), *(REPO / "notebooks").glob("*.ipynb"),
             REPO / "README.md", REPO / "docs" / "DESIGN.md", REPO / "run_all.py"]
    hits = []
    for path in paths:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            cleaned = re.sub(r"[\w.-]+/[\w.-]+#\d+", "", line)  # upstream references: huggingface/tokenizers#1794
            if HISTORY.search(cleaned) and path.name != "test_layout.py":
                hits.append(f"{path.relative_to(REPO)}:{n}")
    assert hits == []
