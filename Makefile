# `make demo` and `make test` create (or reuse) .venv, install what they need and fetch the
# pinned BFCL releases into the user cache (a no-op once they are there).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: demo test bench fetch browser warm-start clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check -e '.[train,eval,test,verl,report]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

fetch: $(STAMP)
	@$(BIN)/envtune bfcl fetch --all

# The warm start the demo trains from, built once: the tiny-128x4 model fine-tuned on the oracle
# episodes of the format split (about 3 minutes on 2 cores). bench/learning.py keeps the 6 episodes
# longer than 4096 tokens too, which costs half as much again.
WARM_START := runs/warm-start/final/config.json
# The demo's evaluation of the tuned model: one validation task per category, two samples each, within
# the smoke preset's token budgets
DEMO_EVAL_IDS := multi_turn_base_7,multi_turn_miss_func_7,multi_turn_miss_param_2,multi_turn_long_context_19
$(WARM_START): | fetch
	$(BIN)/envtune sft --model tiny-128x4 --split format --prompt compact --max-steps 600 --learning-rate 3e-3 \
		--gradient-accumulation-steps 1 --save-steps 200 --max-completion-tokens 4096 --output runs/warm-start

warm-start: $(WARM_START)

demo: fetch $(WARM_START)
	$(BIN)/envtune bfcl verify
	$(BIN)/envtune bfcl verify --release 2025.6.8
	$(BIN)/envtune bfcl score examples/sample_results.jsonl --json runs/demo/verdicts.json
	$(BIN)/envtune replay --split val --feedback augmented
	$(BIN)/envtune play multi_turn_base_0 --feedback augmented --script examples/play_script.txt
	$(BIN)/envtune feedback coverage --show 5
	rm -rf runs/demo-smoke
	$(BIN)/envtune tune --preset smoke --model runs/warm-start/final --output runs/demo-smoke
	$(BIN)/envtune tune --engine verl --preset smoke --output runs/demo-verl --dry-run > runs/demo-verl-plan.txt
	@echo "veRL dry run: each stage's data and veRL command are in runs/demo-verl-plan.txt"
	rm -rf runs/demo-eval
	@echo "envtune eval --model <the final checkpoint in runs/demo-smoke/summary.json> --ids $(DEMO_EVAL_IDS) ..."
	@$(BIN)/envtune eval --model "$$($(BIN)/python -c "import json; print(json.load(open('runs/demo-smoke/summary.json'))['final_checkpoint'])")" \
		--ids $(DEMO_EVAL_IDS) --prompt compact --samples 2 --temperature 1.0 --max-new-tokens 96 --max-completion-tokens 600 \
		--output runs/demo-eval
	$(BIN)/envtune report runs/demo-smoke runs/demo-eval --output runs/demo-report.html

# The report's browser test drives Debian's chromium through chromedriver: installed here when they
# are missing and this runs as root (as CI does); otherwise the test is skipped and says why.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium and chromium-driver for the report's browser test"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
			|| { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
			|| echo "chromium could not be installed: the browser test will be skipped"; \
		else \
			echo "chromium and chromedriver are missing (Debian: apt-get install chromium chromium-driver): the browser test will be skipped"; \
		fi; \
	fi

test: fetch browser
	$(BIN)/python -m pytest -q

bench: fetch
	$(BIN)/python bench/executor_throughput.py
	$(BIN)/python bench/episode_memory.py
	$(BIN)/python bench/rollout_throughput.py
	cd bench && ../$(BIN)/python eval_parity.py

clean:
	rm -rf $(VENV) build *.egg-info
