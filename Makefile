# Two commands for a fresh machine with Python 3.11:
#   make train   create .venv if needed, install, train on the embedded data, print test metrics
#   make test    same install, then ruff and the test suite
# ARGS passes options through: make train ARGS="--trainer.max_epochs 3 --model.transmission.compressibility_weight 0"

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cilight-installed

.PHONY: train test install benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml edge/pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e ./edge -c constraints.txt
	$(PY) -m pip install --quiet -e ".[dev]" -c constraints.txt
	touch $(STAMP)

train: $(STAMP)
	$(PY) train.py $(ARGS)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) -m pytest $(ARGS)

benchmark: $(STAMP)
	$(PY) -m benchmarks.train_step
	$(PY) -m benchmarks.default_run
	$(PY) -m benchmarks.codec_rate
	$(PY) -m benchmarks.proxy_accuracy --speed-threads 2 1
	$(PY) -m benchmarks.onnx_speed
	$(PY) -m benchmarks.latency_model
	$(PY) -m benchmarks.allocation_speed
	$(PY) -m benchmarks.callback_cost
	$(PY) -m benchmarks.allocation_two_stream --split-points layer2 layer3 --budgets 6 12 24 --scan
	$(PY) -m benchmarks.allocation_two_stream --split-points layer1 layer3 --budgets 10 20 40 --scan

clean:
	rm -rf $(VENV) runs .pytest_cache
