"""`python -m bertxml_lib.bench {pretrain,finetune,inference,cohort}`: the speed ladder and the cohort benchmark."""
import sys

from bertxml_lib.bench.ladder import main

if __name__ == "__main__":
    sys.exit(main())
