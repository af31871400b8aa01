# Two commands on a fresh machine:  `make run` (install + quick profile) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt pyproject.toml | sha1sum | cut -c1-12)
PROFILE ?= quick
ARGS ?=

.PHONY: setup run test test-unit lab figures clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: setup
	$(BIN)/python run_all.py --profile $(PROFILE) $(ARGS)

# The whole suite (what CI runs): the unit tier and the end-to-end tier (one shared ci run, the determinism
# rerun, interrupts and the real-source fixtures) on two pytest-xdist workers, one per core, each file on one
# worker (its module fixtures are made once); the workers share one ci run (tests/conftest.py); each worker runs
# one torch thread so two workers do not oversubscribe the cores. `make test-unit` runs the unit tier only.
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests

test-unit: setup
	$(BIN)/python -m pytest -q -m "not e2e" tests

# Headless Chromium for the site check (tests/test_site.py opens every page of a run's site/ and saves
# screenshots under site/screenshots/): Debian's `chromium` package, installed as root; without it those tests skip.
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# JupyterLab on this checkout with the project's kernel: `python3` is this environment's interpreter (the
# kernelspec installed into .venv, which the lab started from .venv finds first). Notebooks open from
# notebooks/ and read results/<profile>/ relative to the repository root.
lab: setup
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bertxml .venv)" >/dev/null
	JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks

# Refresh the README's results section and committed figures from the quick profile's run.
figures: run
	$(BIN)/python -m bertxml_lib.reporting.readme_results results/quick

clean:
	rm -rf results
