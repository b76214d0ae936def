# One command each on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: install browser-deps demo test lint typecheck unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,postgres,mysql,dashboard,browser]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/optuna-sosae tune

lint: install
	$(BIN)/ruff check optuna_sosae tests examples benchmarks
	$(BIN)/ruff format --check optuna_sosae tests examples benchmarks

typecheck: install
	$(BIN)/mypy

# Debian's Chromium and its WebDriver for the dashboard browser test, only when missing.
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver fonts-liberation; \
	fi

unit: install browser-deps
	$(BIN)/python -m pytest -q

test: unit lint typecheck

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
