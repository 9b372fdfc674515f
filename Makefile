# Two entry points: `make demo` and `make test`. Each creates .venv on first use and reuses it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.p4d-installed

.PHONY: demo test test-fast install clean lmms-env

install: $(STAMP)

# torch is pinned first so pip takes the CPU wheel; the package range is then already satisfied.
$(STAMP): setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/p4d demo --out demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# the quick loop: everything but the tests marked slow (multi-process training, whole precompute jobs)
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

# lmms-eval in its own environment (.venv-lmms: lmms-eval would move torch and PyAV), p4d installed editable
lmms-env:
	bash bench/lmms_env.sh .venv-lmms

clean:
	rm -rf $(VENV) .venv-lmms demo
