# maild — two set-up commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
CONFIG ?= settings.toml
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test

.PHONY: run test lint format install install-test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(TESTSTAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(STAMP)

install: $(STAMP)

install-test: $(TESTSTAMP)
	bash scripts/install-test-deps.sh

## run: the daemon on the shipped settings (SQLite, LMTP listener, Maildir outbox, web view)
run: $(STAMP)
	$(VENV)/bin/maild --config $(CONFIG) db migrate
	exec $(VENV)/bin/maild --config $(CONFIG) run

## test: install what tests need (incl. Dovecot from Debian), lint, run the whole suite
test: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(TESTSTAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(TESTSTAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(TESTSTAMP)
	bash scripts/install-test-deps.sh
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
