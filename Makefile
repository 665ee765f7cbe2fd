# Occam's entry points. `make demo` and `make test` are the README's two commands.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint unit local bench clean

setup:
	bash scripts/setup-venv.sh

demo: setup
	$(VENV)/bin/occam demo --min-accuracy 0.9

lint: setup
	$(VENV)/bin/ruff check occam tests bench
	$(VENV)/bin/ruff format --check occam tests bench
	$(VENV)/bin/mypy

# Lint, type-check, then every test tier that runs on one machine.
test: lint
	$(PY) -m pytest -m "unit or local"

unit: setup
	$(PY) -m pytest -m unit

local: setup
	$(PY) -m pytest -m local

bench: setup
	$(PY) bench/bench_embedded.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
