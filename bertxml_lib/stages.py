"""The stage entry points notebooks 01–04 call: each reads its inputs from the run folder, does the work
through the concern modules and writes its outputs atomically. Tests call these directly."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .atomic import atomic_path, write_csv, write_json
from .cohort import build_cohort, load_cohort
from .paths import RunPaths
from .runtime import seed_everything, set_threads


def run_cohort(out_dir: str | Path, *, seed: int, source: str, n_patients: int, n_codes: int, min_chars: int,
               excluded_types: Sequence[str], split_fractions: Sequence[float], chronic_min_count: int,
               min_train_count: int, notes: str = "", codes: str = "", data_dir: str = "", icd_version: int = 10,
               language: str = "en") -> dict:
    """Notebook 01: raw source -> cohort (paper 4.1)."""
    from .sources import labels_icd_version, load_source

    started = time.perf_counter()
    raw_notes, raw_codes = load_source(source, out_dir, seed=seed, n_patients=n_patients, n_codes=n_codes, notes=notes,
                                       codes=codes, data_dir=data_dir, icd_version=icd_version, language=language)
    stats = build_cohort(raw_notes, raw_codes, out_dir, seed=seed, min_chars=min_chars,
                         excluded_types=excluded_types, split_fractions=split_fractions,
                         chronic_min_count=chronic_min_count, min_train_count=min_train_count,
                         icd_version=labels_icd_version(source, icd_version))
    stats["seconds"] = round(time.perf_counter() - started, 2)
    return stats


def run_tokenizer(out_dir: str | Path, *, seed: int, vocab_size: int, min_frequency: int, oov_notes: int) -> dict:
    """Notebook 02: EHR WordPiece on the training split; OOV per note on held-out (dev) notes, ours vs general."""
    from .offshelf import load_offshelf_tokenizer
    from .tokenizer import oov_per_note, oov_summary, token_length_quantiles, train_wordpiece

    paths = RunPaths(out_dir)
    cohort = load_cohort(out_dir)
    tok = train_wordpiece(cohort.split("train")["text"].tolist(), vocab_size, min_frequency, paths.tokenizer_dir)
    dev = cohort.split("dev")
    sample = dev.sample(n=min(oov_notes, len(dev)), random_state=seed)["text"].tolist()
    per_note = {"ehr_wordpiece": oov_per_note(tok, sample), "general_bert_base_uncased": oov_per_note(load_offshelf_tokenizer(), sample)}
    summary = oov_summary(per_note)
    summary.insert(1, "vocab_size", [len(tok), 30522])
    long = pd.concat([df.assign(tokenizer=name) for name, df in per_note.items()], ignore_index=True)
    write_csv(paths.table("oov_summary.csv"), summary)
    write_csv(paths.table("oov_per_note.csv"), long)
    lengths = token_length_quantiles(tok, cohort.notes["text"].tolist())
    write_json(paths.tables_dir / "token_lengths.json", lengths)
    return {"summary": summary, "per_note": long, "token_lengths": lengths, "vocab_size": len(tok)}


def run_pretraining(out_dir: str | Path, *, seed: int, encoder: str, max_len: int, epochs: int, batch_tokens: int,
                    lr: float, warmup: float, weight_decay: float, mask_prob: float, device: str = "auto",
                    threads: int = 0, figure1: bool = True, show_text: bool = True) -> dict:
    """Notebook 03: MLM pretraining from scratch, loss curve, Figure 1."""
    from transformers import AutoTokenizer

    from .pretrain import PretrainConfig, mlm_example, mlm_example_figure, pretrain_mlm, save_loss_curve

    set_threads(threads)
    paths = RunPaths(out_dir)
    cohort = load_cohort(out_dir)
    tok = AutoTokenizer.from_pretrained(paths.tokenizer_dir)
    cfg = PretrainConfig(encoder=encoder, max_len=max_len, epochs=epochs, batch_tokens=batch_tokens, lr=lr,
                         warmup=warmup, weight_decay=weight_decay, mask_prob=mask_prob, seed=seed, device=device)
    started = time.perf_counter()
    curve = pretrain_mlm(tok, cohort.split("train")["text"].tolist(), cohort.split("dev")["text"].tolist(),
                         cfg, paths.pretrained_dir(encoder))
    seconds = time.perf_counter() - started
    save_loss_curve(curve, paths.table(f"pretrain_loss_{encoder}.csv"), paths.figure(f"pretrain_loss_{encoder}.png"),
                    f"MLM pretraining, EHR BERT {encoder}")
    example = None
    if figure1:
        dev = cohort.split("dev")
        ros = dev[dev["text"].str.lower().str.contains("review of systems")]
        note = (ros if len(ros) else dev).iloc[0]["text"]
        example = mlm_example(paths.pretrained_dir(encoder), tok, note[note.lower().find("review of systems"):]
                              if "review of systems" in note.lower() else note, seed=seed)
        mlm_example_figure(example, paths.figure("figure1_mlm_example.png"),
                           f"Figure 1: masked LM on a dev note (EHR BERT {encoder})", show_text=show_text)
    dev_curve = curve[curve["split"] == "dev"]
    return {"curve": curve, "seconds": seconds, "example": example,
            "final_dev_loss": float(dev_curve["loss"].iloc[-1]), "initial_dev_loss": float(dev_curve["loss"].iloc[0])}


def row_name(encoder: str, variant: str, max_len: int) -> str:
    """Table 2 `model` names: ehr_<encoder>_<variant>_<max_len>."""
    return f"ehr_{encoder}_{variant}_{max_len}"


def run_finetuning(out_dir: str | Path, *, seed: int, encoder: str, variant: str, max_len: int, epochs: int,
                   batch_tokens: int, lr: float, head_lr: float, warmup: float, weight_decay: float,
                   eval_batch_size: int, device: str = "auto", threads: int = 0) -> dict:
    """Notebook 04: one Table 2 row — fine-tune the pretrained encoder with a [CLS] or XML head."""
    from transformers import AutoTokenizer

    from . import metrics, modeling
    from .finetune import FinetuneConfig, finetune, predict_notes
    from .predictions import save_predictions

    set_threads(threads)
    seed_everything(seed)
    paths = RunPaths(out_dir)
    row = row_name(encoder, variant, max_len)
    cohort = load_cohort(out_dir)
    tok = AutoTokenizer.from_pretrained(paths.pretrained_dir(encoder))
    model = modeling.from_pretrained_encoder(paths.pretrained_dir(encoder), head=variant, codes=cohort.codes)
    if variant == "xml":
        # Paper 3.3.2: label vectors start at the mean pretrained embedding of each description's tokens.
        modeling.init_label_vectors(model, tok, [cohort.descriptions[c] for c in cohort.codes])
    cfg = FinetuneConfig(epochs=epochs, batch_tokens=batch_tokens, lr=lr, head_lr=head_lr, warmup=warmup,
                         weight_decay=weight_decay, eval_batch_size=eval_batch_size, seed=seed, device=device,
                         max_len=max_len)
    train, dev, test = cohort.split("train"), cohort.split("dev"), cohort.split("test")
    result = finetune(model, tok, train["text"].tolist(), cohort.label_matrix(train),
                      dev["text"].tolist(), cohort.label_matrix(dev), cfg)
    started = time.perf_counter()
    dev_probs = predict_notes(model, tok, dev["text"].tolist(), max_len, eval_batch_size=eval_batch_size,
                              batch_tokens=batch_tokens, device=device, progress=False)
    test_probs = predict_notes(model, tok, test["text"].tolist(), max_len, eval_batch_size=eval_batch_size,
                               batch_tokens=batch_tokens, device=device, progress=False)
    infer_seconds = time.perf_counter() - started

    with atomic_path(paths.model_dir(row)) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    save_predictions(paths.predictions_file(row), cohort.codes, dev["note_id"], dev_probs, test["note_id"], test_probs)
    y_test = cohort.label_matrix(test)
    macro, skipped = metrics.macro_auc(y_test, test_probs)
    record = {
        "model": row, "family": variant, "encoder": encoder, "max_len": max_len,
        "micro_auc": metrics.micro_auc(y_test, test_probs), "macro_auc": macro, "n_codes_skipped": skipped,
        "dev_micro_auc": metrics.micro_auc(cohort.label_matrix(dev), dev_probs),
        "best_epoch": result["best_epoch"], "train_seconds": round(result["train_seconds"], 2),
        "inference_seconds": round(infer_seconds, 2), "pad_fraction": result.get("pad_fraction"),
    }
    write_json(paths.metrics_file(row), record)
    history = pd.DataFrame(result["history"])
    write_csv(paths.table(f"finetune_history_{row}.csv"), history)
    return {"row": row, "metrics": record, "history": history, "test_probs": test_probs,
            "positive_rate": float(np.mean(y_test))}
