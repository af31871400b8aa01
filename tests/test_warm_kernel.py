"""Kernels forked from a warm server (`core.warm_kernel`) behave like kernels jupyter_client launches."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from conftest import process_alive

from bertxml_lib.core.warm_kernel import KernelServer

# A notebook that reports what a kernel sees: its process, folder, environment, threads and seeded draws.
CELLS = [
    "import sys\ntorch_loaded_before = 'torch' in sys.modules\nimport json, os, random\nimport numpy as np\nimport torch",
    "torch.manual_seed(3); random.seed(3); np.random.seed(3)\n"
    "seen = {'pid': os.getpid(), 'cwd': os.getcwd(), 'env': os.environ.get('WARM_TEST_VALUE'),\n"
    "        'threads': torch.get_num_threads(), 'torch_loaded_before': torch_loaded_before,\n"
    "        'draws': [torch.rand(3).tolist(), random.random(), float(np.random.rand())],\n"
    "        'matmul': float((torch.ones(300, 300) @ torch.ones(300, 300)).sum())}\n"
    "print(json.dumps(seen))",
]


def _run(tmp_path: Path, name: str, manager=None, cells=CELLS) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    source, target = tmp_path / f"{name}-in.ipynb", tmp_path / f"{name}.ipynb"
    nbformat.write(nb, str(source))
    extra = {"kernel_manager_class": manager} if manager else {}
    pm.execute_notebook(str(source), str(target), kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                        **extra)
    out = nbformat.read(str(target), as_version=4)
    return json.loads(out.cells[-1].outputs[0]["text"])


def test_a_forked_kernel_sees_what_a_launched_one_sees(tmp_path, monkeypatch):
    monkeypatch.setenv("WARM_TEST_VALUE", "set-after-the-server-started")
    with KernelServer(["torch", "numpy"]) as server:
        monkeypatch.setenv("WARM_TEST_VALUE", "set-for-this-kernel")
        first = _run(tmp_path, "warm1", server.manager_class())
        second = _run(tmp_path, "warm2", server.manager_class())
    fresh = _run(tmp_path, "fresh")
    assert first["torch_loaded_before"] and not fresh["torch_loaded_before"]  # imports came from the server
    assert first["pid"] != second["pid"] != os.getpid()  # a process per notebook
    for warm in (first, second):
        assert warm["cwd"] == fresh["cwd"] == str(tmp_path)
        assert warm["env"] == "set-for-this-kernel" == fresh["env"]  # the environment at launch, not the server's
        assert warm["threads"] == fresh["threads"]
        assert warm["draws"] == fresh["draws"] and warm["matmul"] == fresh["matmul"] == 300.0 * 300 * 300
        assert not process_alive(warm["pid"])  # shut down with its notebook


def test_a_failing_cell_fails_the_notebook_and_the_server_keeps_serving(tmp_path):
    with KernelServer(["json"]) as server:
        with pytest.raises(pm.PapermillExecutionError, match="ZeroDivisionError"):
            _run(tmp_path, "bad", server.manager_class(), ["1 / 0"])
        again = _run(tmp_path, "good", server.manager_class(),
                     ["import json, os\nprint(json.dumps({'pid': os.getpid()}))"])
    assert again["pid"] != os.getpid()
    assert not server.state.exists()  # the server's bookkeeping folder is removed on close


def test_a_server_that_cannot_import_says_so_and_notebooks_get_a_fresh_kernel(tmp_path, capfd):
    with KernelServer(["no_such_module_anywhere"]) as server:
        with pytest.raises(RuntimeError, match="stopped while importing"):
            server.ready()
    with KernelServer(["no_such_module_anywhere"]) as server:
        seen = _run(tmp_path, "fallback", server.manager_class())
    assert not seen["torch_loaded_before"] and seen["draws"] == _run(tmp_path, "fresh")["draws"]
    assert "launching a fresh kernel" in capfd.readouterr().err
