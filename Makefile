# netlab: two commands do all the set-up on a fresh machine with Python 3.11 and make.
#   make demo   virtual environment + netlab, then `netlab compare`
#   make test   the same set-up, then the whole test suite
#   make bench  the same set-up, then benchmarks/run.py (writes benchmarks/RESULTS.md)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/netlab compare

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# about 45 minutes: every bench mode on every transport, written to benchmarks/RESULTS.md
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
