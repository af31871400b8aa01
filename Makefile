# Two commands on a fresh machine:  `make run` (install + quick profile) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt pyproject.toml | sha1sum | cut -c1-12)
PROFILE ?= quick
ARGS ?=

.PHONY: setup run test figures clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: setup
	$(BIN)/python run_all.py --profile $(PROFILE) $(ARGS)

test: setup
	$(BIN)/python -m pytest -q tests

# Refresh the README's results section and committed figures from the quick profile's run.
figures: run
	$(BIN)/python -m bertxml_lib.reporting.readme_results results/quick

clean:
	rm -rf results
