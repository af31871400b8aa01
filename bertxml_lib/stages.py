"""The stage entry points notebooks 01–04 call: each reads its inputs from the run folder, does the work
through the concern modules and writes its outputs atomically. Tests call these directly."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import atomic_path, write_csv, write_json
from bertxml_lib.core.config import ConfigError
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.rows import CLINICAL, OFFSHELF, OFFSHELF_FT, PRETRAINED_ENCODERS, bert_row, row_family, row_name
from bertxml_lib.core.runtime import seed_everything, set_threads
from bertxml_lib.data.cohort import build_cohort, load_cohort
from bertxml_lib.data.sources import labels_icd_version, load_source
from bertxml_lib.data.synthetic import load_truth
from bertxml_lib.data.validation import DataError
from bertxml_lib.evaluation import oracle, scaling
from bertxml_lib.evaluation.predictions import load_predictions
from bertxml_lib.evaluation.prior import prior_probs
from bertxml_lib.evaluation.records import record_row
from bertxml_lib.models import modeling
from bertxml_lib.models.offshelf import load_offshelf_tokenizer, prepare_offshelf_dir
from bertxml_lib.models.packed import supports_packed
from bertxml_lib.reporting import evidence_report
from bertxml_lib.reporting.pretraining_report import mlm_example_figure, save_loss_curve
from bertxml_lib.reporting.scaling_report import scaling_figure
from bertxml_lib.text.tokenizer import oov_per_note, oov_summary, token_length_quantiles, train_wordpiece
from bertxml_lib.training import baselines, neural_baselines
from bertxml_lib.training.finetune import FinetuneConfig, finetune, predict_notes
from bertxml_lib.training.pretrain import (
    PretrainConfig,
    continue_pretraining,
    mlm_example,
    pretrain_mlm,
)


def run_cohort(out_dir: str | Path, *, seed: int, source: str, n_patients: int, n_codes: int, min_chars: int,
               excluded_types: Sequence[str], split_fractions: Sequence[float], chronic_min_count: int,
               min_train_count: int, notes: str = "", codes: str = "", data_dir: str = "", icd_version: int = 10,
               language: str = "en", fhir_labels: str = "encounter", synthetic: dict | None = None) -> dict:
    """Notebook 01: raw source -> cohort (paper 4.1).

    For the synthetic source (`synthetic`: its `data.synthetic.*` knobs, None = defaults) it then measures
    the cohort's context phenomena (`stats["phenomena"]`) and records the `oracle` row, which knows what the
    generator wrote (`stats["oracle"]`: metrics record and decomposition); real sources skip both."""

    started = time.perf_counter()
    raw_notes, raw_codes = load_source(source, out_dir, seed=seed, n_patients=n_patients, n_codes=n_codes, notes=notes,
                                       codes=codes, data_dir=data_dir, icd_version=icd_version, language=language,
                                       fhir_labels=fhir_labels, synthetic=synthetic,
                                       stream=True)  # synthetic and fhir: Parquet notes, streamed by build_cohort
    try:
        stats = build_cohort(raw_notes, raw_codes, out_dir, seed=seed, min_chars=min_chars,
                             excluded_types=excluded_types, split_fractions=split_fractions,
                             chronic_min_count=chronic_min_count, min_train_count=min_train_count,
                             icd_version=labels_icd_version(source, icd_version))
    except ValueError as exc:
        # The cohort rules' own checks (a split with no notes, no code above cohort.min_train_count, ...) are
        # about the user's data or settings: a DataError (run_all exit 2) that names where the data came from.

        if isinstance(exc, DataError) or not str(exc).startswith("cohort:"):
            raise
        where = {"csv": f"{notes} (data.notes) with {codes} (data.codes)", "synthetic":
                 f"data.source=synthetic (data.n_patients={n_patients}, data.n_codes={n_codes})"}.get(
                     source, f"{data_dir} (data.source={source})")
        raise DataError(f"{where}: {exc}") from None
    stats["seconds"] = round(time.perf_counter() - started, 2)
    if source == "synthetic":  # ground truth exists only for generated notes; cheap (no training)
        stats["phenomena"] = oracle.phenomena_table(out_dir, source)
        stats["oracle"] = oracle.run_oracle(out_dir, source)
    return stats


def run_tokenizer(out_dir: str | Path, *, seed: int, vocab_size: int, min_frequency: int, oov_notes: int) -> dict:
    """Notebook 02: EHR WordPiece on the training split; OOV per note on held-out (dev) notes, ours vs general."""

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
                    threads: int = 0, figure1: bool = True, show_text: bool = True, offshelf_layers: int = 1,
                    offshelf_mlm_epochs: int = 1, offshelf_lr: float = 1e-4) -> dict:
    """Notebook 03: MLM pretraining from scratch, loss curve, Figure 1.

    `encoder="offshelf_finetuned"` instead continues MLM on the training notes from the off-the-shelf
    general-domain BERT (cut to `offshelf_layers`, positions extended to 1,024; the paper's "Finetuned
    BERT (1024)") for `offshelf_mlm_epochs` epochs at `offshelf_lr`, with its own general vocabulary."""
    from transformers import AutoTokenizer

    set_threads(threads)
    paths = RunPaths(out_dir)
    cohort = load_cohort(out_dir)
    train_texts, dev_texts = cohort.split("train")["text"].tolist(), cohort.split("dev")["text"].tolist()
    started = time.perf_counter()
    if encoder == OFFSHELF_FT:
        cfg = PretrainConfig(encoder=encoder, max_len=max_len, epochs=offshelf_mlm_epochs, batch_tokens=batch_tokens,
                             lr=offshelf_lr, warmup=warmup, weight_decay=weight_decay, mask_prob=mask_prob, seed=seed,
                             device=device)
        base = encoder_checkpoint(out_dir, OFFSHELF, offshelf_layers=offshelf_layers)
        curve = continue_pretraining(train_texts, dev_texts, cfg, paths.pretrained_dir(encoder), model_dir=base,
                                     new_max=max(1024, max_len), cache_dir=paths.token_cache_dir)
        tok, title = AutoTokenizer.from_pretrained(base), "continued MLM, off-the-shelf BERT on EHR notes"
    else:
        tok = AutoTokenizer.from_pretrained(paths.tokenizer_dir)
        cfg = PretrainConfig(encoder=encoder, max_len=max_len, epochs=epochs, batch_tokens=batch_tokens, lr=lr,
                             warmup=warmup, weight_decay=weight_decay, mask_prob=mask_prob, seed=seed, device=device)
        curve = pretrain_mlm(tok, train_texts, dev_texts, cfg, paths.pretrained_dir(encoder),
                             cache_dir=paths.token_cache_dir)  # token ids cached across notebooks 03/04
        title = f"MLM pretraining, EHR BERT {encoder}"
    seconds = time.perf_counter() - started
    save_loss_curve(curve, paths.table(f"pretrain_loss_{encoder}.csv"), paths.figure(f"pretrain_loss_{encoder}.png"),
                    title)
    speed = curve["tokens_per_s"].dropna().round(1).tolist() if "tokens_per_s" in curve else []
    write_json(paths.metrics_dir / "timings" / f"pretrain_{encoder}.json",  # run-varying: not in tables/
               {"seconds": round(seconds, 2), "epoch_tokens_per_s": speed})
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


NOT_RUN_OFFLINE = ("not run: weights not available offline "
                   "(give a local HF checkpoint with --set 04.pretrained_path=DIR)")


def encoder_checkpoint(out_dir: str | Path, encoder: str, *, offshelf_layers: int = 0, pretrained_path: str = "") -> Path:
    """The HF folder (encoder weights + tokenizer) notebook 04 fine-tunes for `encoder`."""

    paths = RunPaths(out_dir)
    if encoder == OFFSHELF:
        return prepare_offshelf_dir(paths.pretrained_dir(f"offshelf_L{offshelf_layers}"), offshelf_layers)
    if encoder == CLINICAL:
        folder = Path(pretrained_path).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"04.pretrained_path={pretrained_path!r}: expected a local HF checkpoint folder "
                              f"with config.json, model weights and a tokenizer (BioBERT, clinical BERT)")
        return folder
    return paths.pretrained_dir(encoder)  # EHR encoders and offshelf_finetuned: written by notebook 03


def coding_model(checkpoint: str | Path, variant: str, cohort, *, seed: int, max_len: int,
                 hier_segment_len: int = 128):
    """`(BertForIcdCoding, tokenizer)`: the encoder at `checkpoint` with a fresh `variant` head over the cohort's
    codes, positions extended to `max_len` when it has fewer (paper 4.2.1: new rows random) and, for the XML
    head, label vectors from the code descriptions (paper 3.3.2)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = modeling.from_pretrained_encoder(checkpoint, head=variant, codes=cohort.codes, seed=seed,
                                             hier_segment_len=hier_segment_len, max_len=max_len)
    if max_len > model.config.max_position_embeddings:
        modeling.extend_position_embeddings(model, max_len, seed=seed)  # paper 4.2.1: rows 512-1023 random
    tok.model_max_length = max(tok.model_max_length, max_len)
    if variant == "xml":
        # Paper 3.3.2: label vectors start at the mean pretrained embedding of each description's tokens.
        modeling.init_label_vectors(model, tok, [cohort.descriptions[c] for c in cohort.codes])
    return model, tok


def run_finetuning(out_dir: str | Path, *, seed: int, encoder: str, variant: str, max_len: int, epochs: int,
                   batch_tokens: int, lr: float, head_lr: float, warmup: float, weight_decay: float,
                   eval_batch_size: int, device: str = "auto", threads: int = 0, offshelf_layers: int = 1,
                   offshelf_lr: float = 1e-4, pretrained_path: str = "", hier_segment_len: int = 128) -> dict:
    """Notebook 04: one Table 2 row — fine-tune a pretrained encoder with a [CLS], XML, LAN or hier head.

    `encoder` is an EHR BERT pretrained by notebook 03, `offshelf` (the general-domain BERT, its first
    `offshelf_layers` layers), `offshelf_finetuned` (after continued MLM) or `clinical` (the local
    checkpoint `pretrained_path`; without one the row is recorded as not run). Encoders with fewer
    positions than `max_len` get new random position rows (paper 4.2.1). Pretrained general-domain
    encoders are fine-tuned at `offshelf_lr` instead of the from-scratch encoders' `lr`."""
    set_threads(threads)
    seed_everything(seed)
    paths = RunPaths(out_dir)
    row = row_name(encoder, variant, max_len)
    family = row_family(encoder, variant)
    if encoder == CLINICAL and not pretrained_path:
        record = {"model": row, "family": family, "encoder": encoder, "head": variant, "max_len": max_len,
                  "status": NOT_RUN_OFFLINE}
        write_json(paths.metrics_file(row), record)
        return {"row": row, "metrics": record, "history": pd.DataFrame(), "test_probs": None, "positive_rate": None}
    checkpoint = encoder_checkpoint(out_dir, encoder, offshelf_layers=offshelf_layers, pretrained_path=pretrained_path)
    if encoder in PRETRAINED_ENCODERS:
        lr = offshelf_lr
    cohort = load_cohort(out_dir)
    model, tok = coding_model(checkpoint, variant, cohort, seed=seed, max_len=max_len,
                              hier_segment_len=hier_segment_len)
    cfg = FinetuneConfig(epochs=epochs, batch_tokens=batch_tokens, lr=lr, head_lr=head_lr, warmup=warmup,
                         weight_decay=weight_decay, eval_batch_size=eval_batch_size, seed=seed, device=device,
                         max_len=max_len)
    train, dev, test = cohort.split("train"), cohort.split("dev"), cohort.split("test")
    result = finetune(model, tok, train["text"].tolist(), cohort.label_matrix(train),
                      dev["text"].tolist(), cohort.label_matrix(dev), cfg, cache_dir=paths.token_cache_dir)
    started = time.perf_counter()
    dev_probs = predict_notes(model, tok, dev["text"].tolist(), max_len, eval_batch_size=eval_batch_size,
                              batch_tokens=batch_tokens, device=device, progress=False, cache_dir=paths.token_cache_dir)
    test_probs = predict_notes(model, tok, test["text"].tolist(), max_len, eval_batch_size=eval_batch_size,
                               batch_tokens=batch_tokens, device=device, progress=False,
                               cache_dir=paths.token_cache_dir)
    infer_seconds = time.perf_counter() - started

    model.config.icd_max_len = int(max_len)  # the segment length travels with the model (predict reads it)
    with atomic_path(paths.model_dir(row)) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    record = record_row(
        out_dir, cohort, bert_row(encoder, variant, max_len), dev_probs, test_probs,
        encoder_layers=model.config.num_hidden_layers, best_epoch=result["best_epoch"],
        train_seconds=round(result["train_seconds"], 2), inference_seconds=round(infer_seconds, 2),
        pad_fraction=result.get("pad_fraction"),
        # Per-epoch wall times stay here: tables/ holds only what the seed fixes (byte-identical reruns).
        epoch_seconds=[round(h["seconds"], 2) for h in result["history"]],
        epoch_tokens_per_s=[round(h["tokens_per_s"], 1) for h in result["history"]],
        # Real (unpadded) training tokens/s over all epochs, and notes/s of the dev + test prediction pass.
        train_tokens_per_s=round(sum(h["tokens_per_s"] * h["seconds"] for h in result["history"])
                                 / sum(h["seconds"] for h in result["history"]), 1),
        inference_notes_per_s=round((len(dev) + len(test)) / infer_seconds, 2),
        encoder_path="packed" if supports_packed(model) else "padded")
    y_test = cohort.label_matrix(test)
    history = pd.DataFrame(result["history"])
    write_csv(paths.table(f"finetune_history_{row}.csv"), history.drop(columns=["seconds", "tokens_per_s"]))
    return {"row": row, "metrics": record, "history": history, "test_probs": test_probs,
            "positive_rate": float(np.mean(y_test))}


def run_baseline(out_dir: str | Path, *, model: str, seed: int, max_tokens: int, C: list, logreg_readings: list,
                 min_word_count: int,
                 mha_emb_dim: int, mha_starspace_epochs: int, mha_hidden: int, mha_heads: int, mha_lrs: list,
                 mha_epochs: int, mha_batch_size: int, cnn_emb_dim: int, cnn_filters: int, cnn_kernel: int,
                 cnn_lr: float, cnn_epochs: int, cnn_batch_size: int, n_bootstrap: int, device: str = "auto",
                 threads: int = 0) -> dict:
    """Notebook 05: one baseline row — `logreg` (paper 3.4.1), `mha` (paper 3.4.2) or `cnn` (CAML, Ji et al.).

    Returns `{"row", "metrics", "history"}` (history: dev micro AUC per lr and epoch; empty for logreg);
    logreg adds `reference`: the row against a plain whole-note TF-IDF model, paired over `n_bootstrap`
    patient resamples (`baselines.reference_comparison`)."""

    seed_everything(seed)
    if model == "logreg":
        set_threads(threads)
        record = baselines.run_logreg(out_dir, max_tokens=max_tokens, C=C, seed=seed, readings=logreg_readings)
        test_probs = load_predictions(RunPaths(out_dir).predictions_file(record["model"])).test_probs
        reference = baselines.reference_comparison(out_dir, test_probs, seed, n_bootstrap)
        return {"row": record["model"], "metrics": record, "history": pd.DataFrame(), "reference": reference}
    if model == "mha":
        return neural_baselines.run_mha(out_dir, max_tokens=max_tokens, min_word_count=min_word_count,
                                        emb_dim=mha_emb_dim, starspace_epochs=mha_starspace_epochs, hidden=mha_hidden,
                                        heads=mha_heads, lrs=[float(x) for x in mha_lrs], epochs=mha_epochs,
                                        batch_size=mha_batch_size, seed=seed, device=device, threads=threads)
    if model == "cnn":
        return neural_baselines.run_cnn(out_dir, max_tokens=max_tokens, min_word_count=min_word_count,
                                        emb_dim=cnn_emb_dim, filters=cnn_filters, kernel=cnn_kernel, lr=cnn_lr,
                                        epochs=cnn_epochs, batch_size=cnn_batch_size, seed=seed, device=device,
                                        threads=threads)
    raise ValueError(f"model must be logreg, mha or cnn, got {model!r}")


SCALING_MODELS = ("prior", "oracle", "logreg", "xml", "cls")


def run_scaling(out_dir: str | Path, *, seed: int, encoder: str, train_fractions: Sequence[float],
                models: Sequence[str], max_len: int, epochs: int, batch_tokens: int, lr: float, head_lr: float,
                warmup: float, weight_decay: float, eval_batch_size: int, max_tokens: int, C: float,
                logreg_readings: Sequence[str], n_bootstrap: int, test_patients: int = 0, min_test_positives: int = 1,
                device: str = "auto", threads: int = 0) -> dict:
    """Notebook 08: test micro/macro AUC against the number of training patients (nested subsets of the training
    split; the cohort's label set, dev and test splits at every size), with patient-bootstrap intervals, a
    fitted curve per model and the BERT-XML / LogReg crossing.

    `models` are `prior` (training frequency), `oracle` (the generator-truth lookup, fitted on the subset;
    synthetic data only), `logreg` (notebook 05's bag of words) and `xml` / `cls` (notebook 03's `encoder`,
    pretrained once on the full training split, fine-tuned on each subset at `max_len` for `epochs` epochs,
    the epoch chosen on dev). `test_patients` > 0 scores a seeded sample of that many test patients (the same
    sample at every size, for every model) instead of the whole test split; macro AUC averages over codes with
    at least `min_test_positives` scored test positives (Table 2's rule). Writes `tables/scaling.csv`,
    `tables/scaling_fit.csv`, `tables/scaling_crossing.csv`, `figures/figure_scaling.png` and wall/CPU times in
    `metrics/timings/scaling.json`."""
    unknown = sorted(set(map(str, models)) - set(SCALING_MODELS))
    if unknown or not models:
        raise ConfigError(f"scaling.models: {list(models)} must name some of {', '.join(SCALING_MODELS)}")
    set_threads(threads)
    paths = RunPaths(out_dir)
    cohort = load_cohort(out_dir)
    train, dev, test = cohort.split("train"), cohort.split("dev"), cohort.split("test")
    if 0 < test_patients < test["patient_id"].nunique():  # speed: a fixed seeded sample, never size-dependent
        test = test[test["patient_id"].isin(scaling.patient_order(test["patient_id"], seed)[:test_patients])]
        test = test.reset_index(drop=True)
    y_train, y_dev, y_test = cohort.label_matrix(train), cohort.label_matrix(dev), cohort.label_matrix(test)
    sizes = scaling.subset_sizes(train["patient_id"].nunique(), train_fractions)
    subsets = scaling.nested_subsets(train["patient_id"], sizes, seed)
    models = [m for m in SCALING_MODELS if m in set(map(str, models))]
    skipped = {}
    if "oracle" in models and not paths.truth.exists():
        models.remove("oracle")
        skipped["oracle"] = "no generator ground truth (real data source)"
    if "oracle" in models:  # each note's view of each code, computed once; the lookup is refitted per subset
        views = oracle.note_views(load_truth(out_dir), cohort.notes.set_index("note_id")["text"])
        train_views, test_views = (oracle.view_matrix(views, df["note_id"].tolist(), cohort.codes) for df in (train, test))
    cfg = FinetuneConfig(epochs=epochs, batch_tokens=batch_tokens, lr=lr, head_lr=head_lr, warmup=warmup,
                         weight_decay=weight_decay, eval_batch_size=eval_batch_size, seed=seed, device=device,
                         max_len=max_len)
    rows, seconds = [], {}  # wall and process CPU seconds per (model, size): CPU time is what contention leaves
    for n, patients in subsets.items():
        keep = train["patient_id"].isin(patients).to_numpy()
        texts, y = train.loc[keep, "text"].tolist(), y_train[keep]
        for model in models:
            started, cpu, extra = time.perf_counter(), time.process_time(), {}
            if model == "prior":
                probs = prior_probs(y, len(test))
            elif model == "oracle":
                probs = oracle.score(oracle.fit_lookup(train_views[keep], y), test_views)
            elif model == "logreg":
                _, probs, info = baselines.bag_of_words_logreg(texts, y, dev["text"].tolist(), test["text"].tolist(),
                                                               max_tokens=max_tokens, C=C, seed=seed, Y_dev=y_dev,
                                                               reading=list(logreg_readings))
                extra = {"C": info["C"], "reading": info["reading"]}
            else:
                net, tok = coding_model(paths.pretrained_dir(encoder), model, cohort, seed=seed, max_len=max_len)
                result = finetune(net, tok, texts, y, dev["text"].tolist(), y_dev, cfg, progress=False,
                                  cache_dir=paths.token_cache_dir)
                probs = predict_notes(net, tok, test["text"].tolist(), max_len, eval_batch_size=eval_batch_size,
                                      batch_tokens=batch_tokens, device=device, progress=False,
                                      cache_dir=paths.token_cache_dir)
                extra = {"best_epoch": result["best_epoch"], "dev_micro_auc": result["best_dev_micro_auc"]}
            seconds[f"{model}_{n}"] = {"wall": round(time.perf_counter() - started, 2),
                                       "cpu": round(time.process_time() - cpu, 2)}
            rows.append({"train_fraction": round(n / train["patient_id"].nunique(), 4),
                         "n_train_patients": n, "n_train_notes": int(keep.sum()), "model": model,
                         "n_test_patients": int(test["patient_id"].nunique())}
                        | scaling.auc_with_intervals(y_test, probs, test["patient_id"], n_bootstrap, seed,
                                                     min_test_positives) | extra)
    table = pd.DataFrame(rows)
    fits, crossings = scaling.fit_all(table)
    write_csv(paths.table("scaling.csv"), table)
    write_csv(paths.table("scaling_fit.csv"), scaling.fits_table(fits))
    write_csv(paths.table("scaling_crossing.csv"), crossings)
    write_json(paths.metrics_dir / "timings" / "scaling.json", seconds)  # run-varying: not in tables/
    png = scaling_figure(table, fits, dict(zip(crossings["metric"], crossings["crossing_train_patients"])),
                         paths.figure("figure_scaling.png"),
                         f"Test AUC vs training patients (EHR BERT {encoder} pretrained once on the full training "
                         f"split, fine-tuned per subset at max length {max_len}; LogReg at {max_tokens} words)")
    return {"table": table, "fits": scaling.fits_table(fits), "crossings": crossings, "sizes": sizes,
            "skipped": skipped, "figure": png, "seconds": seconds}


def run_evidence(out_dir: str | Path, *, seed: int = 0, top_k: int = 10, precision_target: float = 0.95,
                 n_bootstrap: int = 200, max_notes: int = 200, length_bins: int = 4, evidence_table: str = "",
                 show_text: bool = False, device: str = "auto") -> dict:
    """Notebook 09: evidence plausibility against ground truth (synthetic truth or `data.evidence`), the
    under-coding audit, subgroups and the automation rate (`reporting.evidence_report.run_evidence`)."""
    return evidence_report.run_evidence(out_dir, seed=seed, top_k=top_k, precision_target=precision_target,
                                        n_bootstrap=n_bootstrap, max_notes=max_notes, length_bins=length_bins,
                                        evidence_table=evidence_table, show_text=show_text, device=device)
