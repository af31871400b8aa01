"""`python -m bertxml_lib.predict`: top-k ICD codes per note with evidence spans (see `inference.predict`)."""
import sys

from bertxml_lib.inference.predict import main

if __name__ == "__main__":
    sys.exit(main())
