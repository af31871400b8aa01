"""`python -m bertxml_lib.predict`: top-k ICD codes per note with evidence spans (see `inference.predict`).

Arguments, the model folder and the notes are checked first (standard library and pandas only), so a
wrong path or a bad notes file is reported at once; torch and transformers load only for a valid request.
"""
import importlib
import os
import sys

from bertxml_lib.inference import request


def main(argv: list[str] | None = None) -> int:
    args = request.build_parser().parse_args(argv)
    try:
        request.check_request(args)
        note_ids, texts = request.read_notes(args.notes)
    except request.InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return request.EXIT_BAD_INPUT
    if args.quiet:  # read by huggingface_hub and transformers at import: no loading bars, no warnings
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    predict = importlib.import_module("bertxml_lib.inference.predict")  # the heavy part: torch, transformers
    return predict.run(args, note_ids, texts)


if __name__ == "__main__":
    sys.exit(main())
