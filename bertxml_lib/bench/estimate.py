"""`run_all.py --dry-run`: the cost of a profile — from a measured benchmark when one is given, else from FLOPs."""
from __future__ import annotations

from bertxml_lib.models.encoders import ENCODERS

# Assumptions, stated where they are printed: ~9 notes per synthetic patient after filters, a mean of
# ~330 WordPiece tokens per note (median ~200, p90 ~800), 6·N·tokens training FLOPs (+ attention),
# 2·N·tokens inference FLOPs, and a GPU sustaining 40% of a bf16 dense peak of 989 TFLOP/s (H100).
NOTES_PER_PATIENT = 9.0
TOKENS_PER_NOTE = 330.0
GPU_FLOPS = 0.40 * 989e12


def encoder_params(name: str, vocab: int) -> tuple[float, float]:
    """(non-embedding parameters, embedding parameters) of an encoder in encoders.ENCODERS."""
    c = ENCODERS[name]
    d, layers, inter = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    body = layers * (4 * d * d + 2 * d * inter)
    return float(body), float((vocab + c["max_position_embeddings"]) * d)


def per_token_flops(encoder: str, vocab: int, seq: int) -> float:
    """Training FLOPs per token (6·N body + attention at mean length `seq`), for scaling measurements."""
    body, _ = encoder_params(encoder, vocab)
    return 6 * body + 12 * ENCODERS[encoder]["hidden_size"] * ENCODERS[encoder]["num_hidden_layers"] * seq


def measured_epoch_hours(flat: dict, bench: dict, gpus: int) -> list[str]:
    """Hours per pretraining epoch on `gpus` devices like the benchmark's, from its fastest rung's
    measured real tokens/s, scaled to each profile encoder by FLOPs per token (an extrapolation)."""
    best = max(bench["rungs"] + [bench["baseline"]], key=lambda r: r.get("real_tokens_per_s") or 0)
    vocab = flat["tokenizer.vocab_size"]
    train_tokens = 0.7 * flat["data.n_patients"] * NOTES_PER_PATIENT * TOKENS_PER_NOTE
    ref = per_token_flops(bench["encoder"], vocab, 165)
    lines = [f"measured: {best['real_tokens_per_s']:,.0f} real tokens/s ({best['name']}, encoder "
             f"{bench['encoder']}, {bench['machine']['device']}, {bench['machine']['date']})"]
    for enc in flat["pretrain.encoders"]:
        rate = best["real_tokens_per_s"] * ref / per_token_flops(enc, vocab, 165) * gpus
        lines.append(f"  {enc}: ~{train_tokens / rate / 3600:,.1f} h per pretraining epoch on {gpus} such device(s), "
                     f"{flat['pretrain.epochs']} epochs ~{flat['pretrain.epochs'] * train_tokens / rate / 3600:,.1f} h "
                     "(scaled by FLOPs per token; assumes linear scaling across devices)")
    return lines


def describe_cost(flat: dict, bench: dict | None = None, gpus: int = 1) -> str:
    notes = flat["data.n_patients"] * NOTES_PER_PATIENT
    train_tokens = 0.7 * notes * TOKENS_PER_NOTE
    lines = [f"estimate for {int(notes):,} notes (~{train_tokens:,.0f} training tokens), "
             f"assuming {GPU_FLOPS / 1e12:.0f} TFLOP/s sustained per GPU:"]
    for enc in flat["pretrain.encoders"]:
        body, emb = encoder_params(enc, flat["tokenizer.vocab_size"])
        d = ENCODERS[enc]["hidden_size"]
        attn = 12 * d * flat["pretrain.max_len"] / 2  # per-token attention FLOPs (fwd+bwd), mean length/2
        pre = flat["pretrain.epochs"] * train_tokens * (6 * body + attn * 1)
        n_rows = len(flat["finetune.variants"]) * len(flat["finetune.max_lens"])
        fine = n_rows * flat["finetune.epochs"] * train_tokens * (6 * body + attn)
        lines.append(f"  {enc}: {body / 1e6:.1f}M body + {emb / 1e6:.1f}M embedding parameters; "
                     f"pretraining {pre:.2e} FLOPs ≈ {pre / GPU_FLOPS / 3600:.1f} GPU-hours, "
                     f"{n_rows} fine-tuning rows {fine:.2e} FLOPs ≈ {fine / GPU_FLOPS / 3600:.1f} GPU-hours")
    lines.append("  (2 CPU cores sustain roughly 5e10 FLOP/s: multiply the GPU hours by ~8,000 for CPU.)")
    if bench is not None:
        lines += measured_epoch_hours(flat, bench, gpus)
    else:
        lines.append("  pass --bench FILE (from `python -m bertxml_lib.bench pretrain --json FILE` on the target "
                     "device) for an estimate from measured throughput")
    return "\n".join(lines)
