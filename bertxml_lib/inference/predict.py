"""`python -m bertxml_lib.predict`: top-k ICD codes per note, with label-attention evidence (paper 3.3, 4.5).

    python -m bertxml_lib.predict --model results/quick/models/ehr_tiny_xml_1024 [--top-k 5]
        [--format json|csv] [--spans 3] [--output FILE] [--quiet] NOTES.csv|-

NOTES.csv holds `note_id,text` (UTF-8; `-` reads it from standard input); a note without text (empty or
whitespace) is an error naming its rows. The segment length is the model's own (`config.icd_max_len`). Probabilities come from the fast inference path
(`finetune.predict_notes`: length-bucketed segments, max over a note's segments, paper 4.1). For heads
with label attention (BERT-XML, eqs. 2-3) a second pass reads the attention of each note's top-k codes
in every segment: token weights are summed per word (the fast tokenizer's word ids), each segment's
`span_words` highest words above a uniform share are kept, runs of adjacent kept words merge into one
span (character offsets from the tokenizer), and spans of all segments are ranked by attention mass times the
segment's probability for the code, so the segment that decided the prediction counts most. For the
hierarchical head (attention over a note's segments) the evidence is the text of the highest-attention
segments instead (`segment_evidence`).
Bad input exits with status 2 and a message naming the file, column or row.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from bertxml_lib.core import runtime
from bertxml_lib.core.atomic import write_text
from bertxml_lib.core.progress import progress_bar
from bertxml_lib.inference import neural_predict
from bertxml_lib.inference.evidence import describe_codes, merge_spans, segment_scores, token_scores
from bertxml_lib.inference.neural_predict import is_neural_baseline
from bertxml_lib.inference.request import (  # noqa: F401  (InputError, read_notes: public here too)
    EXIT_BAD_INPUT,
    InputError,
    build_parser,
    check_model_dir,
    check_request,
    check_texts,
    read_notes,
)
from bertxml_lib.models.modeling import BertForIcdCoding, hier_max_tokens
from bertxml_lib.models.packed import coding_forward
from bertxml_lib.text.segments import (
    hier_note_lengths,
    length_bucketed_batches,
    pad_hier_batch,
    split_into_segments,
)
from bertxml_lib.training.finetune import predict_notes

def resolve_max_len(model_dir: Path, config, override: int | None) -> tuple[int, str]:
    """The segment length the model was fine-tuned with, and where it came from: `--max-len`, else the
    model's own `config.icd_max_len` (saved with every fine-tuned model), else the run's record
    `<out>/metrics/<row>.json` beside `<out>/models/<row>`. Never guessed from the folder's name or the
    position embeddings: a copied or renamed folder reads the same value."""
    limit, what = int(config.max_position_embeddings), "the model's positions"
    if getattr(config, "icd_head", None) == "hier":

        limit, what = hier_max_tokens(config), "the tokens the hier model's segments hold"
    candidates = [(override, "--max-len"), (getattr(config, "icd_max_len", None), "config.icd_max_len")]
    record = model_dir.parent.parent / "metrics" / f"{model_dir.name}.json"
    if record.is_file():
        candidates.append((json.loads(record.read_text()).get("max_len"), str(record)))
    found = [(int(v), s) for v, s in candidates if v]
    if not found:
        raise InputError(f"{model_dir}/config.json records no icd_max_len (the segment length the model was "
                         f"fine-tuned with); pass --max-len N")
    value, source = found[0]
    if not 3 <= value <= limit:
        raise InputError(f"max_len {value} (from {source}) must lie in [3, {limit}] ({what})")
    return value, source


def load_model(model_dir: str | Path):
    """`(model, tokenizer)` from a folder written under `<out>/models/<row>` (weights + tokenizer)."""
    from transformers import AutoConfig, AutoTokenizer

    model_dir = check_model_dir(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    if not getattr(config, "icd_codes", None) or not getattr(config, "icd_head", None):
        raise InputError(f"{model_dir}/config.json has no icd_codes/icd_head: not an ICD coding model "
                         f"(use a fine-tuned folder <out>/models/<row>, not pretrained_<encoder>)")
    if not (model_dir / "tokenizer.json").is_file():
        raise InputError(f"{model_dir}: no tokenizer.json; the fast tokenizer is saved with every fine-tuned model")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        raise InputError(f"{model_dir}: tokenizer is not a fast tokenizer; evidence needs its character offsets")
    try:
        model = BertForIcdCoding.from_pretrained(model_dir)
    except ValueError as err:
        raise InputError(f"{model_dir}: cannot load the coding model ({err})") from None
    return model, tokenizer


def _segments_with_offsets(tokenizer, texts: list[str], max_len: int, truncate: int | None = None):
    """Per note, its segments as `(input_ids, offsets (n, 2), word_ids (n,))`, split as `segments.encode_notes`
    (with `truncate`: of the note's first `truncate` tokens, as `segments.encode_notes_hierarchical`)."""

    content = max_len - 2
    out = []
    for start in range(0, len(texts), 256):
        enc = tokenizer(texts[start:start + 256], add_special_tokens=False, truncation=False, verbose=False,
                        return_offsets_mapping=True, return_attention_mask=False, return_token_type_ids=False)
        for i, ids in enumerate(enc["input_ids"]):
            offsets = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
            words = np.array([-1 if w is None else w for w in enc.word_ids(i)], dtype=np.int64)
            if truncate is not None:
                ids, offsets, words = ids[:truncate], offsets[:truncate], words[:truncate]
            segs = split_into_segments(ids, max_len, tokenizer.cls_token_id, tokenizer.sep_token_id)
            out.append([(seg, offsets[s * content:(s + 1) * content], words[s * content:(s + 1) * content])
                        for s, seg in enumerate(segs)])
    return out


def attention_weights(model, tokenizer, texts: list[str], max_len: int, codes, batch_size: int = 32,
                      device: str = "auto", progress: bool = True) -> list[list[list[tuple]]] | None:
    """Label attention of each note's codes `codes[i]` (label-set indices; any number per note) over its
    tokens, segment by segment: `[note][rank] -> [(segment, offsets (n, 2), words (n,), weights (n,), prob)]`
    (the code's sigmoid in that segment as `prob`). None when the head has no label attention ([CLS])."""
    import torch

    torch_device = runtime.get_device(device)
    model.to(torch_device).eval()
    notes = _segments_with_offsets(tokenizer, texts, max_len)
    flat = [(i, s) for i, segs in enumerate(notes) for s in range(len(segs))]
    lengths = np.array([len(notes[i][s][0]) for i, s in flat])
    batches = length_bucketed_batches(lengths, batch_size * max_len, shuffle=False, seed=0, max_batch_size=batch_size)
    found: list[list[list[tuple]]] = [[[] for _ in range(len(codes[i]))] for i in range(len(texts))]
    with torch.inference_mode():
        for batch in progress_bar(batches, desc="evidence", disable=not progress, leave=False, mininterval=5):
            segments = [notes[flat[b][0]][flat[b][1]][0] for b in batch]
            with runtime.autocast(torch_device):  # packed: no padded position computed (models.packed)
                out = coding_forward(model, segments, tokenizer.pad_token_id, torch_device)
            if out.label_attention is None:
                return None
            for row, b in enumerate(batch):
                i, s = flat[b]
                if not len(codes[i]):
                    continue
                _, offsets, words = notes[i][s]
                index = torch.as_tensor(np.asarray(codes[i], dtype=np.int64), device=torch_device)
                att = out.label_attention[row, index, 1:1 + len(offsets)].float().cpu().numpy()  # (k, n_tokens)
                prob = torch.sigmoid(out.logits[row, index].float()).cpu().numpy()  # (k,)
                for rank in range(len(index)):
                    found[i][rank].append((s, offsets, words, att[rank], float(prob[rank])))
    return found


def spans_from_attention(weights: list[list[list[tuple]]], texts: list[str], n_spans: int = 3,
                         span_words: int = 8) -> list[list[list[dict]]]:
    """Evidence spans `[note][rank] -> [{start, end, text, attention, segment}]` from `attention_weights`:
    each segment's merged spans (`evidence.merge_spans`) ranked by attention mass times the segment's
    probability for the code, at most `n_spans`, overlapping ones skipped."""
    evidence = []
    for i, text in enumerate(texts):
        per_code = []
        for segments in weights[i]:
            candidates = [(mass * prob, start, end, mass, s) for s, offsets, words, att, prob in segments
                          for start, end, mass in merge_spans(att, offsets, words, span_words)]
            chosen: list[dict] = []
            for _, start, end, mass, s in sorted(candidates, key=lambda c: (-c[0], c[1])):
                if len(chosen) == n_spans:
                    break
                if any(start < c["end"] and c["start"] < end for c in chosen):
                    continue  # a word split across two segments shows up in both
                chosen.append({"start": start, "end": end, "text": text[start:end], "attention": round(mass, 6),
                               "segment": s})
            per_code.append(chosen)
        evidence.append(per_code)
    return evidence


def attention_evidence(model, tokenizer, texts: list[str], max_len: int, top_codes: np.ndarray, n_spans: int = 3,
                       span_words: int = 8, batch_size: int = 32, device: str = "auto",
                       progress: bool = True) -> list[list[list[dict]]] | None:
    """Evidence spans `[note][rank] -> [{start, end, text, attention, segment}]` for `top_codes (n_notes, k)`
    (or one list of code indices per note). None when the model's head has no label attention (the [CLS] head).
    """
    weights = attention_weights(model, tokenizer, texts, max_len, top_codes, batch_size, device, progress)
    return None if weights is None else spans_from_attention(weights, texts, n_spans, span_words)


def segment_weights(model, tokenizer, texts: list[str], max_len: int, codes, batch_size: int = 32,
                    device: str = "auto", progress: bool = True) -> list[list[tuple]]:
    """Hier models: attention of each note's codes `codes[i]` over its segments, `[note][rank] ->
    (segment offsets [(n_s, 2), ...], weights (n_segments,))`, over the note's first `max_len` tokens
    as the model reads them."""
    import torch

    torch_device = runtime.get_device(device)
    model.to(torch_device).eval()
    notes = _segments_with_offsets(tokenizer, texts, model.config.hier_segment_len, truncate=max_len)
    ids = [[segment for segment, _, _ in note] for note in notes]
    batches = length_bucketed_batches(hier_note_lengths(ids), batch_size * max_len, shuffle=False, seed=0,
                                      max_batch_size=batch_size)
    found: list[list[tuple]] = [[] for _ in texts]
    with torch.inference_mode():
        for batch in progress_bar(batches, desc="evidence", disable=not progress, leave=False, mininterval=5):
            input_ids, mask = pad_hier_batch([ids[i] for i in batch], tokenizer.pad_token_id)
            with runtime.autocast(torch_device):
                out = model(input_ids.to(torch_device), mask.to(torch_device))
            for row, i in enumerate(batch):
                if not len(codes[i]):
                    continue
                index = torch.as_tensor(np.asarray(codes[i], dtype=np.int64), device=torch_device)
                att = out.label_attention[row, index, :len(ids[i])].float().cpu().numpy()  # (k, n_segments)
                found[i] = [([offsets for _, offsets, _ in notes[i]], weights) for weights in att]
    return found


def spans_from_segments(weights: list[list[tuple]], texts: list[str], n_spans: int = 3) -> list[list[list[dict]]]:
    """Hier evidence `[note][rank] -> [{start, end, text, attention, segment}]` from `segment_weights`: the
    character span of each code's highest-attention segments (at most `n_spans`; beyond the top one only
    those above a uniform share)."""
    evidence: list[list[list[dict]]] = []
    for i, text in enumerate(texts):
        per_code = []
        for seg_offsets, att in weights[i]:
            order = np.argsort(-att, kind="stable")[:n_spans]
            keep = [s for rank, s in enumerate(order) if rank == 0 or att[s] > 1 / len(att)]
            spans = []
            for s in keep:
                offsets = seg_offsets[s]
                if len(offsets):  # an empty note's one segment holds no text
                    start, end = int(offsets[:, 0].min()), int(offsets[:, 1].max())
                    spans.append({"start": start, "end": end, "text": text[start:end],
                                  "attention": round(float(att[s]), 6), "segment": int(s)})
            per_code.append(spans)
        evidence.append(per_code)
    return evidence


def segment_evidence(model, tokenizer, texts: list[str], max_len: int, top_codes: np.ndarray, n_spans: int = 3,
                     batch_size: int = 32, device: str = "auto", progress: bool = True) -> list[list[list[dict]]]:
    """Hier models: evidence `[note][rank] -> [{start, end, text, attention, segment}]` is the character span of
    each top code's highest-attention segments (`spans_from_segments`)."""
    weights = segment_weights(model, tokenizer, texts, max_len, top_codes, batch_size, device, progress)
    return spans_from_segments(weights, texts, n_spans)


def code_evidence(model_dir: str | Path, texts: list[str], codes: list[list[str]], n_spans: int = 3,
                  max_len: int | None = None, batch_size: int = 32, device: str = "auto",
                  progress: bool = False) -> list[list[dict]] | None:
    """Evidence of chosen (note, code) pairs by the `predict` code path: `[note][j] -> {offsets (n, 2),
    scores (n,), spans}` for code `codes[i][j]`, where `offsets`/`scores` are the character spans of the
    units the model attends (WordPieces, words, CNN windows, hier segments) and the attention the spans
    were ranked by (`evidence.token_scores`), and `spans` is what `predict` returns for that code.
    None for models without attention ([CLS] head, logistic regression)."""
    model_dir = Path(model_dir)
    if is_neural_baseline(model_dir):
        return neural_predict.code_evidence(model_dir, texts, codes, n_spans=n_spans, max_len=max_len,
                                            batch_size=batch_size, device=device, progress=progress)
    if not (model_dir / "config.json").is_file():
        return None
    model, tokenizer = load_model(model_dir)
    if model.config.icd_head == "cls":
        return None
    max_len, _ = resolve_max_len(model_dir, model.config, max_len)
    index = {c: j for j, c in enumerate(model.config.icd_codes)}
    chosen = [[index[c] for c in note_codes] for note_codes in codes]
    if model.config.icd_head == "hier":
        weights = segment_weights(model, tokenizer, texts, max_len, chosen, batch_size, device, progress)
        spans = spans_from_segments(weights, texts, n_spans)
        scored = [[segment_scores(*w) for w in note] for note in weights]
    else:
        weights = attention_weights(model, tokenizer, texts, max_len, chosen, batch_size, device, progress)
        if weights is None:
            return None
        spans = spans_from_attention(weights, texts, n_spans)
        scored = [[token_scores(w) for w in note] for note in weights]
    return [[{"offsets": o, "scores": sc, "spans": sp} for (o, sc), sp in zip(scored[i], spans[i])]
            for i in range(len(texts))]


def predict(model_dir: str | Path, note_ids: list[str], texts: list[str], top_k: int = 5, n_spans: int = 3,
            max_len: int | None = None, batch_size: int = 32, device: str = "auto", progress: bool = True) -> dict:
    """`{model, head, max_len, max_len_source, notes: [{note_id, codes: [{rank, code, description,
    probability, evidence?}]}]}` for the notes, from the model folder."""

    model_dir = Path(model_dir)
    check_texts(texts, note_ids)
    if is_neural_baseline(model_dir):  # notebook 05's mha / cnn rows: words, not WordPieces

        return neural_predict.predict(model_dir, note_ids, texts, top_k=top_k, n_spans=n_spans, max_len=max_len,
                                      batch_size=batch_size, device=device, progress=progress)
    model, tokenizer = load_model(model_dir)
    max_len, source = resolve_max_len(model_dir, model.config, max_len)
    codes = list(model.config.icd_codes)
    probs = predict_notes(model, tokenizer, texts, max_len, eval_batch_size=batch_size, device=device,
                          progress=progress)  # (n_notes, L)
    k = min(top_k, len(codes))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties: label-set order
    evidence_of = segment_evidence if model.config.icd_head == "hier" else attention_evidence
    evidence = evidence_of(model, tokenizer, texts, max_len, top, n_spans, batch_size=batch_size,
                           device=device, progress=progress)
    descriptions = describe_codes(codes, model_dir)
    notes = []
    for i, note_id in enumerate(note_ids):
        ranked = []
        for rank, j in enumerate(top[i]):
            entry = {"rank": rank + 1, "code": codes[j], "description": descriptions[j],
                     "probability": round(float(probs[i, j]), 6)}
            if evidence is not None:
                entry["evidence"] = evidence[i][rank]
            ranked.append(entry)
        notes.append({"note_id": note_id, "codes": ranked})
    return {"model": str(model_dir), "head": model.config.icd_head, "max_len": max_len, "max_len_source": source,
            "notes": notes}


def to_csv(result: dict) -> str:
    """One row per (note, code): `note_id, rank, code, description, probability, evidence` (JSON spans)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["note_id", "rank", "code", "description", "probability", "evidence"])
    for note in result["notes"]:
        for c in note["codes"]:
            spans = json.dumps(c["evidence"], ensure_ascii=False) if "evidence" in c else ""
            writer.writerow([note["note_id"], c["rank"], c["code"], c["description"], c["probability"], spans])
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """The CLI (`bertxml_lib.predict` runs the same checks before importing this module)."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    try:
        check_request(args)
        note_ids, texts = read_notes(args.notes)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run(args, note_ids, texts)


def run(args, note_ids: list[str], texts: list[str]) -> int:
    """Predict for checked arguments and notes; write JSON or CSV to `--output` or standard output."""
    if args.quiet:  # transformers' own bars (loading weights) too
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    try:
        result = predict(args.model, note_ids, texts, args.top_k, args.spans, args.max_len, args.batch_size,
                         args.device, progress=not args.quiet)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = to_csv(result) if args.format == "csv" else json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    if args.output:

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
