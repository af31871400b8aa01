"""`torchrun --nproc_per_node 2` (gloo, CPU) pretraining equals one process on the same global batches."""
import json
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from test_resume import ENV, REPO, cli, curve_rows, write_corpus

from bertxml_lib.training.distributed import DistContext, shard_rows


def test_shard_rows_split_every_row_once():
    shares = [shard_rows(5, DistContext(rank, 2)) for rank in range(2)]
    assert [s.tolist() for s in shares] == [[0, 2, 4], [1, 3]]
    assert shard_rows(1, DistContext(1, 2)).tolist() == []  # fewer rows than ranks: rank 1 idles at weight 0


def test_torchrun_two_ranks_equals_single_process(tmp_path):
    texts, tok = write_corpus(tmp_path, 60)
    # Dropout off: two ranks draw different dropout masks than one process would, nothing else differs.
    single = cli(texts, tok, tmp_path / "single", "--dropout", "0", "--epochs", "2")
    subprocess.run(single, cwd=REPO, env=ENV, check=True, capture_output=True)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", *cli(texts, tok, tmp_path / "ddp", "--dropout", "0", "--epochs", "2")[2:]]
    run = subprocess.run(ddp, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]

    one, two = curve_rows(tmp_path / "single" / "loss_curve.json"), curve_rows(tmp_path / "ddp" / "loss_curve.json")
    assert [r[:3] for r in one] == [r[:3] for r in two] and len(one) > 20
    np.testing.assert_allclose([r[3] for r in two], [r[3] for r in one], rtol=1e-4, atol=1e-5)
    assert json.loads((tmp_path / "ddp" / "pretrain_config.json").read_text())["world_size"] == 2
    w1, w2 = load_file(tmp_path / "single" / "model.safetensors"), load_file(tmp_path / "ddp" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-3, atol=1e-4, msg=name)
    # Rank 0 alone writes: one model folder, no stray per-rank outputs.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ddp")) == ["ddp"]
