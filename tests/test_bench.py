"""The benchmark ladder's JSON schema, parity fields, round design and FLOP count on a very small run (never its speed)."""
import json

import pytest
import torch

from bertxml_lib.bench import ladder as bench
from bertxml_lib.bench import noise, rounds


@pytest.fixture(scope="module")
def pretrain_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "pretrain.json"
    bench.main(["pretrain", "--encoder", "tiny", "--notes", "10", "--batch-size", "1", "--device", "cpu",
                "--rounds", "2", "--padded-batches", "1", "--json", str(out)])
    return json.loads(out.read_text())


def test_pretrain_json_schema_and_parity(pretrain_result):
    r = pretrain_result
    assert r["task"] == "pretrain" and r["speedup_metric"] == "real_tokens_per_s"
    assert {"platform", "cpu_count", "torch", "device"} <= set(r["machine"])
    base = r["baseline"]
    assert base["speedup"] == 1.0 and base["real_tokens_per_s"] > 0 and 0 < base["pad_fraction"] < 1
    names = [row["name"] for row in r["rungs"]]
    assert names == ["1_sdpa_attention", "2_length_bucketing", "3_sparse_mlm_head", "4_unpadded_packed",
                     "5_cpu_dropout_attention", "6_cuda_bf16_fused_compile"]
    for row in r["rungs"]:
        assert {"name", "real_tokens_per_s", "speedup", "parity"} <= set(row)
    measured = [row for row in r["rungs"] if "skipped" not in row]
    assert [row["name"] for row in measured] == names[:5]  # CPU: the CUDA rung says why it was skipped
    assert "CUDA" in r["rungs"][5]["skipped"] and r["rungs"][5]["speedup"] is None
    assert r["design"]["rounds"] == 2 and len(r["matmul_peak_per_round"]) == 2
    # Threads are chosen before every round (every contender of a round runs with the same number).
    assert [t["n"] in (1, r["machine"]["cpu_count"]) for t in r["threads"]["per_round"]] == [True, True]
    for row in measured:
        p = row["parity"]
        assert p["ok"] and p["loss_rel_diff"] <= p["tolerance"]["loss_rel"] and p["grad_rel_l2"] <= 1e-3
        assert p["loss_baseline"] == pytest.approx(base_loss := measured[0]["parity"]["loss_baseline"]) and base_loss > 0
        # The speedup is the median of the per-round ratios, each against the baseline in the same round.
        assert len(row["speedup_per_round"]) == 2 and row["speedup"] == pytest.approx(sum(row["speedup_per_round"]) / 2)
        assert row["speedup_spread"]["min"] <= row["speedup"] <= row["speedup_spread"]["max"]
        assert row["step_time_p90_s"] >= row["step_time_p50_s"] > 0 and row["peak_memory_bytes"] > 0
        assert 0 < row["share_of_matmul_peak"] and row["achieved_flops_per_s"] > 0
    # Padding to 1,024 vs length buckets vs packing: the same segments, fewer and then no padded positions.
    packed = [measured[3]["pad_fraction"], measured[4]["pad_fraction"]]
    assert packed == [0, 0] and 0 < measured[1]["pad_fraction"] < measured[0]["pad_fraction"]
    assert measured[0]["pad_fraction"] == pytest.approx(base["pad_fraction"])


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
    body = 2 * 2 * 2 * (4 * 64 * 64 + 2 * 64 * 256)   # 2 FLOPs x 2 positions x 2 layers x weights per layer
    attention = 4 * 1 * 2 * 2 * 64 * 2                 # QK^T and AV: 2 x 2 x seq^2 x d per layer
    head = 2 * 2 * (64 * 64 + 64 * 10)                 # transform + vocabulary projection at both positions
    assert bench.step_flops("pretrain", "tiny", 10, [2], masked=None, train=True) == 3 * (body + attention + head)
    sparse_head = 2 * 1 * (64 * 64 + 64 * 10)          # only the one masked position
    assert bench.step_flops("pretrain", "tiny", 10, [2], masked=1, train=False) == body + attention + sparse_head
    # Two packed segments of 1 position each: the same body, attention 1^2 + 1^2 instead of 2^2.
    packed_attention = 4 * (1 + 1) * 64 * 2
    assert bench.step_flops("pretrain", "tiny", 10, [1, 1], masked=1, train=False) == body + packed_attention + sparse_head


def test_packed_rung_parity_on_inference_and_finetune():
    work = bench.build_workload(4, seed=1, vocab_size=300)
    packed = bench.ladder("finetune")[2]
    assert packed.packed and packed.name == "4_unpadded_packed"
    for task in ("inference", "finetune"):
        model = bench.make_model(task, "tiny", len(work.tokenizer), seed=0)
        ref = bench.parity_pass(task, model, work, None, torch.device("cpu"))
        result = bench.compare(ref, bench.parity_pass(task, model, work, packed, torch.device("cpu")), amp=False)
        assert result["ok"] and result["loss_rel_diff"] < 1e-5
        assert result.get("prob_max_abs_diff", 0) < 1e-5 and result.get("grad_rel_l2", 0) < 1e-4


def test_balanced_groups_by_hand():
    # Costs 5, 4, 3, 3, 1 (items 1, 3, 0, 4, 2) into 2 groups, each to the lighter one (ties: the first):
    # 5 -> A, 4 -> B, 3 -> B (7), 3 -> A (8), 1 -> B (8): A = items {1, 4}, B = items {3, 0, 2}, 8 each.
    assert rounds.balanced_groups([3, 5, 1, 4, 3], 2) == [[1, 4], [3, 0, 2]]
    assert rounds.balanced_groups([2.0], 3) == [[0], [], []]


def test_noise_agreement_by_hand():
    def run(s):
        return {"task": "pretrain", "machine": {"date": "d", "load_average_1m": 2.0},
                "rungs": [{"name": "a", "speedup": s}, {"name": "cuda", "speedup": None}]}

    report = noise.agreement([run(9.0), run(10.0), run(11.0)], bound=0.15)["pretrain"]
    assert report["a"]["mean"] == pytest.approx(10.0) and report["a"]["max_dev"] == pytest.approx(0.1)
    assert report["a"]["within"] and "cuda" not in report
    assert not noise.agreement([run(5.0), run(10.0)], bound=0.15)["pretrain"]["a"]["within"]
