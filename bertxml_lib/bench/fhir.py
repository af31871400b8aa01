"""Benchmark of the FHIR source's parsing approach (notebook 01, `data.source=fhir`): validation of the fields
used by hand (`data.fhir`) against validating every resource with the pydantic models of `fhir.resources`.

    python -m bertxml_lib.bench.fhir --resources 20000 --json results/bench/fhir.json

Generates a Bulk Data export of about `--resources` resources (patients, encounters, ICD-10 conditions,
DocumentReferences with ~2 KB base64 notes, Compositions with XHTML sections; the same resources also as
Bundles) and times, side by side on the same files:
  * `json_floor`: `json.loads` of every NDJSON line, nothing else (the least any reader pays);
  * `hand_ndjson` / `hand_bundles`: `fhir.load_fhir`, the whole source (parse, check, extract text, link);
  * `pydantic`: `fhir.resources` R4B `model_validate_json` of every line (validation only, no extraction;
    the resource type is looked up beforehand), run only when that package is importable (it is not a
    dependency of the suite: `pip install --target DIR fhir.resources` and PYTHONPATH=DIR).
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import tempfile
import time
from pathlib import Path

from bertxml_lib.core.atomic import write_json
from bertxml_lib.data import fhir

WORDS = ("patient seen examined ward morning vital signs stable afebrile labs reviewed plan continue medications "
         "monitor hypertension diabetes creatinine edema follow up primary care tolerating diet ambulating").split()
CODES = ["I10", "E11.9", "I50.9", "I48.91", "N17.9", "J18.9", "E78.5", "K21.9", "Z79.01", "F32.9"]


def _ref(key: str) -> dict:
    return {"reference": key}


def make_export(n_resources: int, seed: int = 0, note_chars: int = 2000) -> list[dict]:
    """About `n_resources` resources: per encounter one patient share, 3 conditions, one DocumentReference and
    one Composition (~7 resources per encounter, 4 encounters per patient)."""
    rng = random.Random(seed)
    out: list[dict] = []
    n_enc = max(1, n_resources // 6)
    for e in range(n_enc):
        pid, eid = f"p{e // 4}", f"e{e}"
        if e % 4 == 0:
            out.append({"resourceType": "Patient", "id": pid, "gender": "unknown", "birthDate": "2100-01-01"})
        cids = [f"c{e}-{k}" for k in range(3)]
        out.append({"resourceType": "Encounter", "id": eid, "status": "finished", "subject": _ref(f"Patient/{pid}"),
                    "class": {"code": "IMP"}, "diagnosis": [{"condition": _ref(f"Condition/{c}")} for c in cids]})
        for c in cids:
            out.append({"resourceType": "Condition", "id": c, "subject": _ref(f"Patient/{pid}"),
                        "code": {"coding": [{"system": fhir.ICD_SYSTEMS[10], "code": rng.choice(CODES)}]}})
        words = " ".join(rng.choice(WORDS) for _ in range(note_chars // 7))
        date = f"2150-{1 + e % 12:02d}-{1 + e % 28:02d}T08:00:00Z"
        out.append({"resourceType": "DocumentReference", "id": f"d{e}", "status": "current",
                    "subject": _ref(f"Patient/{pid}"), "date": date,
                    "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
                    "content": [{"attachment": {"contentType": "text/plain",
                                                "data": base64.b64encode(words.encode()).decode()}}],
                    "context": {"encounter": [_ref(f"Encounter/{eid}")]}})
        out.append({"resourceType": "Composition", "id": f"k{e}", "status": "final", "subject": _ref(f"Patient/{pid}"),
                    "encounter": _ref(f"Encounter/{eid}"), "date": date, "author": [_ref("Practitioner/x")],
                    "type": {"coding": [{"code": "18842-5", "display": "Discharge summary"}]}, "title": "Discharge",
                    "section": [{"title": "Course", "text": {"status": "generated", "div":
                                 f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{words[::-1]}</p></div>'}}]})
    return out


def write_layouts(resources: list[dict], root: Path) -> tuple[Path, Path]:
    """The export as Bulk Data NDJSON (<root>/ndjson) and as Bundles of 1,000 entries (<root>/bundles)."""
    nd, bu = root / "ndjson", root / "bundles"
    nd.mkdir(parents=True)
    bu.mkdir(parents=True)
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    for rtype, lines in by_type.items():
        (nd / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    for b in range(0, len(resources), 1000):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources[b:b + 1000]]}
        (bu / f"bundle{b // 1000:04d}.json").write_text(json.dumps(bundle))
    return nd, bu


def _each(fn, items) -> None:
    for item in items:
        fn(item)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(n_resources: int, repeats: int = 3) -> dict:
    resources = make_export(n_resources)
    with tempfile.TemporaryDirectory() as tmp:
        nd, bu = write_layouts(resources, Path(tmp))
        lines = [line for p in sorted(nd.glob("*.ndjson")) for line in p.read_text().splitlines()]
        # Each parsed resource is dropped at once, as a streaming reader drops it (holding 20K pydantic models
        # alive would time the garbage collector, not the validation).
        timings = {"json_floor": lambda: _each(json.loads, lines),
                   "hand_ndjson": lambda: fhir.load_fhir(nd), "hand_bundles": lambda: fhir.load_fhir(bu)}
        try:
            from fhir.resources.R4B import get_fhir_model_class

            models = {t: get_fhir_model_class(t) for t in fhir.USED_TYPES}
            types = [json.loads(line)["resourceType"] for line in lines]
            timings["pydantic"] = lambda: _each(lambda pair: models[pair[0]].model_validate_json(pair[1]),
                                                list(zip(types, lines)))
        except ImportError:
            pass
        seconds = {name: min(_timed(fn) for _ in range(repeats)) for name, fn in timings.items()}
        mb = sum(p.stat().st_size for p in nd.glob("*.ndjson")) / 1e6
    n = len(resources)
    result = {"resources": n, "notes": sum(r["resourceType"] in fhir.NOTE_TYPES for r in resources),
              "ndjson_mb": round(mb, 1), "repeats": repeats,
              "seconds": {k: round(v, 3) for k, v in seconds.items()},
              "resources_per_s": {k: round(n / v) for k, v in seconds.items()}}
    if "pydantic" in seconds:
        result["pydantic_over_hand_ndjson"] = round(seconds["pydantic"] / seconds["hand_ndjson"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resources", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default="", help="write the result here")
    args = p.parse_args(argv)
    result = run(args.resources, args.repeats)
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
