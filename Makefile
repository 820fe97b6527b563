# netlab: two commands do all the set-up on a fresh machine with Python 3.11 and make.
#   make demo   virtual environment + netlab, then `netlab compare`
#   make test   the same set-up, then the strict type check, the linter and the whole test suite
#   make test-quick  the same set-up, then the linter and every test that starts no process
#               and no namespace (those marked `process` are left out): well under a minute
#   make soak   the same set-up, then the long soak: 200 clients x 1,000 messages over every
#               transport, a tenth of them killed mid-stream; prints what was lost and leaked
#   make bench  the same set-up, then benchmarks/run.py (writes benchmarks/RESULTS.md)
#   make bench-quick  a few minutes: the target table of the datagram path, the relay and
#               the cross-core runs, beside main's server (benchmarks/results/targets.md)
#   make test-lowest  the lowest versions pyproject.toml allows, in .venv-lowest: the strict
#               type check and a quick part of the suite (are the floors true?)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-quick lint typecheck soak bench bench-quick install clean kernel-tools interpreter-access test-lowest

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/netlab compare

test: $(STAMP) kernel-tools interpreter-access typecheck lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the quick loop: no subprocess, no namespace (tests marked `process` are left out; an
# unmarked test that starts a process fails, so the mark stays true: tests/conftest.py),
# in four pytest-xdist workers (many of these tests wait on timeouts rather than compute),
# with hypothesis's "quick" profile (50 examples a property, not 300; see tests/conftest.py)
QUICK_WORKERS ?= 4
test-quick: $(STAMP) lint
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-quick} $(BIN)/python -m pytest -q -m "not process" \
	  -n $(QUICK_WORKERS) $(PYTEST_ARGS)

# ruff over netlab/ and tests/ (rules in pyproject.toml)
lint: $(STAMP)
	$(BIN)/python -m ruff check netlab tests benchmarks

# the strict type check over netlab/ (settings in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/python -m mypy

# Kernel-mode tests (real loss in a private network namespace) need root and nft, ip, tc,
# unshare; the trace tests check their pcap with tcpdump, and bench's relay mode runs socat.
# As root, install what is missing; otherwise those tests skip and say why.
kernel-tools:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  command -v nft >/dev/null || missing="$$missing nftables"; \
	  command -v ip >/dev/null || missing="$$missing iproute2"; \
	  command -v tc >/dev/null || missing="$$missing iproute2"; \
	  command -v unshare >/dev/null || missing="$$missing util-linux"; \
	  command -v tcpdump >/dev/null || missing="$$missing tcpdump"; \
	  command -v socat >/dev/null || missing="$$missing socat"; \
	  if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing for the kernel-mode tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	else \
	  echo "not root: kernel-mode tests will be skipped (run make test as root to include them)"; \
	fi

# As root, `netlab check` runs each program as an unused uid (issue 21): that uid must be able
# to reach the Python interpreter the tests start programs with. Where the interpreter lives
# under a directory closed to others (pyenv under /root), open the directories on its path for
# traversal only (o+x: no listing), and say which.
interpreter-access: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then \
	  for py in "$$(readlink -f $(BIN)/python)" "$$(readlink -f "$$(command -v python3)")"; do \
	    d=$$(dirname "$$py"); \
	    while [ "$$d" != / ]; do \
	      if [ -d "$$d" ] && [ "$$(stat -c %A "$$d" | cut -c10)" != x ] && [ "$$(stat -c %A "$$d" | cut -c10)" != t ]; then \
	        echo "opening $$d for traversal (o+x): programs netlab check runs as another uid start $$py"; \
	        chmod o+x "$$d"; \
	      fi; \
	      d=$$(dirname "$$d"); \
	    done; \
	  done; \
	fi

soak: $(STAMP)
	$(BIN)/python -m netlab.experiments.soak --clients 200 --messages 1000 $(SOAK_ARGS)

# about 45 minutes: every bench mode on every transport, written to benchmarks/RESULTS.md
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# a few minutes: the rows of the second performance round's target table only (datagram
# intake, the relay, ping-pong on one and on two cores, idle CPU), beside main's server
# (BEFORE=REV to compare with another revision); writes benchmarks/results/targets.md
BEFORE ?= main
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --targets --before $(BEFORE) $(BENCH_ARGS)

# The lowest versions pyproject.toml allows: pip has no lowest-version resolution, so each
# `>=` floor of the dependencies (and of the test extra) is pinned with `==` in a constraints
# file, and the rest (what those need) resolves as usual. A floor that is no release (0.10
# when the first is 0.10.1) fails to install: write the floor as the release it is.
LOWEST  ?= .venv-lowest
LOWEST_STAMP = $(LOWEST)/.installed
LOWEST_TESTS ?= tests/test_cli_conventions.py tests/test_cli_library.py tests/test_explore_cli.py \
                tests/test_check_usage.py tests/test_cli_impairments.py tests/test_architecture.py tests/test_errors.py \
                tests/test_addresses.py tests/test_framing.py tests/test_impair.py tests/test_tls.py

$(LOWEST_STAMP): pyproject.toml
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) -c 'import re, tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  wanted = project["dependencies"] + [d for ds in project.get("optional-dependencies", {}).values() for d in ds]; \
	  print("\n".join(re.sub(r"\s*>=\s*", "==", d) for d in wanted if ">=" in d))' > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/constraints.txt -e '.[test]'
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)
	@echo "lowest versions:"; $(LOWEST)/bin/python -m pip freeze --exclude-editable | sed 's/^/  /'
	$(LOWEST)/bin/python -m mypy
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) build *.egg-info .pytest_cache .hypothesis
