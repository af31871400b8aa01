"""The benchmark ladder's JSON schema, parity fields and FLOP count on a very small run (never its speed)."""
import json

import pytest
import torch

from bertxml_lib.bench import ladder as bench


@pytest.fixture(scope="module")
def pretrain_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "pretrain.json"
    bench.main(["pretrain", "--encoder", "tiny", "--notes", "6", "--batch-size", "2", "--device", "cpu",
                "--json", str(out)])
    return json.loads(out.read_text())


def test_pretrain_json_schema_and_parity(pretrain_result):
    r = pretrain_result
    assert r["task"] == "pretrain" and r["speedup_metric"] == "real_tokens_per_s"
    assert {"platform", "cpu_count", "torch", "device"} <= set(r["machine"])
    base = r["baseline"]
    assert base["speedup"] == 1.0 and base["real_tokens_per_s"] > 0 and 0 < base["pad_fraction"] < 1
    names = [row["name"] for row in r["rungs"]]
    assert names == ["1_sdpa_attention", "2_length_bucketing", "3_sparse_mlm_head", "4_cuda_bf16_fused_compile"]
    for row in r["rungs"]:
        assert {"name", "real_tokens_per_s", "speedup", "parity"} <= set(row)
    measured = [row for row in r["rungs"] if "skipped" not in row]
    assert [row["name"] for row in measured] == names[:3]  # CPU: the CUDA rung says why it was skipped
    assert "CUDA" in r["rungs"][3]["skipped"] and r["rungs"][3]["speedup"] is None
    for row in measured:
        p = row["parity"]
        assert p["ok"] and p["loss_rel_diff"] <= p["tolerance"]["loss_rel"] and p["grad_rel_l2"] <= 1e-3
        assert p["loss_baseline"] == pytest.approx(base_loss := measured[0]["parity"]["loss_baseline"]) and base_loss > 0
        assert row["speedup"] == pytest.approx(row["real_tokens_per_s"] / base["real_tokens_per_s"])
        assert row["step_time_p90_s"] >= row["step_time_p50_s"] > 0 and row["peak_memory_bytes"] > 0
        assert 0 < row["share_of_matmul_peak"] and row["achieved_flops_per_s"] > 0
    # Padding to 1,024 vs length buckets: the same segments, far fewer computed positions.
    assert measured[1]["pad_fraction"] < measured[0]["pad_fraction"] == pytest.approx(base["pad_fraction"])


def test_inference_parity_compares_probabilities():
    work = bench.build_workload(4, seed=1, vocab_size=300)
    model = bench.make_model("inference", "tiny", len(work.tokenizer), seed=0)
    ref = bench.parity_pass("inference", model, work, None, torch.device("cpu"))
    rung = bench.ladder("inference")[1]  # length bucketing: rows padded to their own longest, not 1,024
    got = bench.parity_pass("inference", model, work, rung, torch.device("cpu"))
    result = bench.compare(ref, got, amp=False)
    assert result["ok"] and result["prob_max_abs_diff"] < 1e-5 and ref["probs"].shape == (4, bench.N_LABELS)


def test_step_flops_by_hand():
    # tiny: d=64, 2 layers, intermediate 256; one row of 2 positions, vocabulary 10, dense MLM head.
    batch = {"input_ids": torch.zeros(1, 2, dtype=torch.long), "labels": torch.tensor([[-100, 3]])}
    body = 2 * 2 * 2 * (4 * 64 * 64 + 2 * 64 * 256)   # 2 FLOPs x 2 positions x 2 layers x weights per layer
    attention = 4 * 1 * 2 * 2 * 64 * 2                 # QK^T and AV: 2 x 2 x seq^2 x d per layer
    head = 2 * 2 * (64 * 64 + 64 * 10)                 # transform + vocabulary projection at both positions
    assert bench.step_flops("pretrain", "tiny", 10, batch, sparse_head=False, train=True) == 3 * (body + attention + head)
    sparse_head = 2 * 1 * (64 * 64 + 64 * 10)          # only the one masked position
    assert bench.step_flops("pretrain", "tiny", 10, batch, sparse_head=True, train=False) == body + attention + sparse_head
