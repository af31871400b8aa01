"""`python -m bertxml_lib.predict`: top-k ICD codes per note, with label-attention evidence (paper 3.3, 4.5).

    python -m bertxml_lib.predict --model results/quick/models/ehr_tiny_xml_1024 [--top-k 5]
        [--format json|csv] [--spans 3] [--output FILE] NOTES.csv

NOTES.csv holds `note_id,text` (UTF-8). Probabilities come from the fast inference path
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

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

import numpy as np

from bertxml_lib.core import runtime
from bertxml_lib.core.atomic import write_text
from bertxml_lib.inference import neural_predict
from bertxml_lib.inference.evidence import describe_codes, merge_spans
from bertxml_lib.inference.neural_predict import is_neural_baseline
from bertxml_lib.models.modeling import BertForIcdCoding, hier_max_tokens
from bertxml_lib.text.segments import (
    hier_note_lengths,
    length_bucketed_batches,
    pad_batch,
    pad_hier_batch,
    split_into_segments,
)
from bertxml_lib.training.finetune import predict_notes

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """A problem with the user's model folder or notes file (exit status 2)."""


def read_notes(path: str | Path) -> tuple[list[str], list[str]]:
    """`(note_ids, texts)` from a UTF-8 CSV with columns `note_id,text` (other columns are ignored)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: notes file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise InputError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at line {line}); "
                         f"re-save the file as UTF-8") from None
    try:
        notes = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file; expected a header `note_id,text` and one row per note") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: not a readable CSV ({err})") from None
    missing = [c for c in ("note_id", "text") if c not in notes.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; expected `note_id,text`, "
                         f"found {list(notes.columns)}")
    if not len(notes):
        raise InputError(f"{path}: no notes (only a header)")
    ids = notes["note_id"].str.strip()
    blank = np.flatnonzero(ids.eq("").to_numpy())
    if len(blank):
        raise InputError(f"{path}: column 'note_id' is empty on data row(s) {(blank + 1).tolist()[:5]}")
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise InputError(f"{path}: column 'note_id' repeats {duplicated[:5]}; note ids must be unique")
    return ids.tolist(), notes["text"].tolist()


def resolve_max_len(model_dir: Path, config, override: int | None) -> tuple[int, str]:
    """The segment length the model was fine-tuned with, and where it came from.

    Order: `--max-len`; `config.icd_max_len`; `<out>/metrics/<row>.json` beside `<out>/models/<row>`;
    a `_<n>` suffix of the folder name (`ehr_tiny_xml_1024`); the model's position embeddings.
    """
    limit, what = int(config.max_position_embeddings), "the model's positions"
    if getattr(config, "icd_head", None) == "hier":

        limit, what = hier_max_tokens(config), "the tokens the hier model's segments hold"
    candidates = [(override, "--max-len"), (getattr(config, "icd_max_len", None), "config.icd_max_len")]
    record = model_dir.parent.parent / "metrics" / f"{model_dir.name}.json"
    if record.is_file():
        candidates.append((json.loads(record.read_text()).get("max_len"), str(record)))
    suffix = re.search(r"_(\d+)$", model_dir.name)
    candidates += [(int(suffix.group(1)) if suffix else None, "the folder name"), (limit, "max_position_embeddings")]
    value, source = next((int(v), s) for v, s in candidates if v)
    if not 3 <= value <= limit:
        raise InputError(f"max_len {value} (from {source}) must lie in [3, {limit}] ({what})")
    return value, source


def load_model(model_dir: str | Path):
    """`(model, tokenizer)` from a folder written under `<out>/models/<row>` (weights + tokenizer)."""
    from transformers import AutoConfig, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: model folder not found")
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir}: not a saved model folder (no config.json)")
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


def attention_evidence(model, tokenizer, texts: list[str], max_len: int, top_codes: np.ndarray, n_spans: int = 3,
                       span_words: int = 8, batch_size: int = 32, device: str = "auto",
                       progress: bool = True) -> list[list[list[dict]]] | None:
    """Evidence spans `[note][rank] -> [{start, end, text, attention, segment}]` for `top_codes (n_notes, k)`.

    None when the model's head has no label attention (the [CLS] head).
    """
    import torch
    from tqdm.auto import tqdm

    torch_device = runtime.get_device(device)
    model.to(torch_device).eval()
    notes = _segments_with_offsets(tokenizer, texts, max_len)
    flat = [(i, s) for i, segs in enumerate(notes) for s in range(len(segs))]
    lengths = np.array([len(notes[i][s][0]) for i, s in flat])
    batches = length_bucketed_batches(lengths, batch_size * max_len, shuffle=False, seed=0, max_batch_size=batch_size)
    candidates: dict[tuple[int, int], list[tuple]] = {}
    with torch.inference_mode():
        for batch in tqdm(batches, desc="evidence", disable=not progress, leave=False, mininterval=5):
            input_ids, mask = pad_batch([notes[flat[b][0]][flat[b][1]][0] for b in batch], tokenizer.pad_token_id)
            with runtime.autocast(torch_device):
                out = model(input_ids.to(torch_device), mask.to(torch_device))
            if out.label_attention is None:
                return None
            for row, b in enumerate(batch):
                i, s = flat[b]
                _, offsets, words = notes[i][s]
                codes = torch.as_tensor(top_codes[i], device=torch_device)
                att = out.label_attention[row, codes, 1:1 + len(offsets)].float().cpu().numpy()  # (k, n_tokens)
                prob = torch.sigmoid(out.logits[row, codes].float()).cpu().numpy()  # (k,)
                for rank in range(len(codes)):
                    candidates.setdefault((i, rank), []).extend(
                        (mass * prob[rank], start, end, mass, s) for start, end, mass in
                        merge_spans(att[rank], offsets, words, span_words))
    evidence = []
    for i, text in enumerate(texts):
        per_code = []
        for rank in range(top_codes.shape[1]):
            chosen: list[dict] = []
            for _, start, end, mass, s in sorted(candidates.get((i, rank), []), key=lambda c: (-c[0], c[1])):
                if len(chosen) == n_spans:
                    break
                if any(start < c["end"] and c["start"] < end for c in chosen):
                    continue  # a word split across two segments shows up in both
                chosen.append({"start": start, "end": end, "text": text[start:end], "attention": round(mass, 6),
                               "segment": s})
            per_code.append(chosen)
        evidence.append(per_code)
    return evidence


def segment_evidence(model, tokenizer, texts: list[str], max_len: int, top_codes: np.ndarray, n_spans: int = 3,
                     batch_size: int = 32, device: str = "auto", progress: bool = True) -> list[list[list[dict]]]:
    """Hier models: evidence `[note][rank] -> [{start, end, text, attention, segment}]` is the character span of
    each top code's highest-attention segments (at most `n_spans`; beyond the top one only those above a
    uniform share), over the note's first `max_len` tokens as the model reads them."""
    import torch
    from tqdm.auto import tqdm

    torch_device = runtime.get_device(device)
    model.to(torch_device).eval()
    notes = _segments_with_offsets(tokenizer, texts, model.config.hier_segment_len, truncate=max_len)
    ids = [[segment for segment, _, _ in note] for note in notes]
    batches = length_bucketed_batches(hier_note_lengths(ids), batch_size * max_len, shuffle=False, seed=0,
                                      max_batch_size=batch_size)
    evidence: list[list[list[dict]]] = [[] for _ in texts]
    with torch.inference_mode():
        for batch in tqdm(batches, desc="evidence", disable=not progress, leave=False, mininterval=5):
            input_ids, mask = pad_hier_batch([ids[i] for i in batch], tokenizer.pad_token_id)
            with runtime.autocast(torch_device):
                out = model(input_ids.to(torch_device), mask.to(torch_device))
            for row, i in enumerate(batch):
                codes = torch.as_tensor(top_codes[i], device=torch_device)
                att = out.label_attention[row, codes, :len(ids[i])].float().cpu().numpy()  # (k, n_segments)
                for weights in att:
                    order = np.argsort(-weights, kind="stable")[:n_spans]
                    keep = [s for rank, s in enumerate(order) if rank == 0 or weights[s] > 1 / len(weights)]
                    spans = []
                    for s in keep:
                        offsets = notes[i][s][1]
                        if len(offsets):  # an empty note's one segment holds no text
                            start, end = int(offsets[:, 0].min()), int(offsets[:, 1].max())
                            spans.append({"start": start, "end": end, "text": texts[i][start:end],
                                          "attention": round(float(weights[s]), 6), "segment": int(s)})
                    evidence[i].append(spans)
    return evidence


def predict(model_dir: str | Path, note_ids: list[str], texts: list[str], top_k: int = 5, n_spans: int = 3,
            max_len: int | None = None, batch_size: int = 32, device: str = "auto", progress: bool = True) -> dict:
    """`{model, head, max_len, max_len_source, notes: [{note_id, codes: [{rank, code, description,
    probability, evidence?}]}]}` for the notes, from the model folder."""

    model_dir = Path(model_dir)
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


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertxml_lib.predict", description=__doc__.splitlines()[0])
    parser.add_argument("notes", help="CSV with columns note_id,text (UTF-8)")
    parser.add_argument("--model", required=True, help="a fine-tuned model folder, e.g. <out>/models/<row>")
    parser.add_argument("--top-k", type=_positive, default=5, help="codes per note (default 5)")
    parser.add_argument("--format", choices=("json", "csv"), default="json")
    parser.add_argument("--spans", type=_positive, default=3, help="evidence spans per code, attention heads only")
    parser.add_argument("--max-len", type=_positive, default=None, help="segment length (default: the row's)")
    parser.add_argument("--batch-size", type=_positive, default=32, help="segments per batch (speed only)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--output", "-o", default=None, help="write here (atomically) instead of stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        note_ids, texts = read_notes(args.notes)
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
