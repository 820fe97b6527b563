# netlab: two commands do all the set-up on a fresh machine with Python 3.11 and make.
#   make demo   virtual environment + netlab, then `netlab compare`
#   make test   the same set-up, then the whole test suite
#   make soak   the same set-up, then the long soak: 200 clients x 1,000 messages over every
#               transport, a tenth of them killed mid-stream; prints what was lost and leaked
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test soak install clean

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

soak: $(STAMP)
	$(BIN)/python -m netlab.experiments.soak --clients 200 --messages 1000 $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
