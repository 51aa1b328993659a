# `make demo` and `make test` create (or reuse) .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

$(VENV)/.bfcl-fetched: $(STAMP)
	$(BIN)/envtune bfcl fetch
	@touch $@

demo: $(VENV)/.bfcl-fetched
	$(BIN)/envtune bfcl verify
	$(BIN)/envtune bfcl score examples/sample_results.jsonl

test: $(VENV)/.bfcl-fetched
	$(BIN)/python -m pytest -q

bench: $(VENV)/.bfcl-fetched
	$(BIN)/python bench/executor_throughput.py
	$(BIN)/python bench/episode_memory.py

clean:
	rm -rf $(VENV) build *.egg-info
