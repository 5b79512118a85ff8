# `make demo` runs the notebook series on the embedded sample; `make test` runs all tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# `make flickr8k EXTRAS=dev,gpu` on Linux with an NVIDIA GPU (pyproject.toml's gpu extra)
EXTRAS ?= dev
STAMP := $(VENV)/.installed-$(EXTRAS)
export TF_CPP_MIN_LOG_LEVEL := 3
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: demo lab test lint unit notebooks-stripped nbval flickr8k test-full test-gpu gpu-nbval report

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(PY) -m helpers.run --register-kernel
	touch $(STAMP)

demo: $(STAMP)
	CAPTION_PROFILE=sample $(PY) -m helpers.run

# The tables of measured numbers in README.md and docs/, from the latest runs' JSON.
report: $(STAMP)
	$(PY) -m helpers.report --collect

# JupyterLab on the notebooks, with the `captioning` kernel of .venv; CAPTION_PROFILE
# (default sample) reaches the kernels.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

# The unit tests (two workers) and nbval (one kernel, often waiting on Python) run side
# by side: together they keep both cores busy.
test: lint notebooks-stripped
	$(MAKE) -j2 --output-sync=target unit nbval

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP)
	$(PY) -m pytest tests/ -q -n 2 --durations=12

notebooks-stripped: $(STAMP)
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

NBVAL = -m pytest notebooks/ -p no:python --nbval-lax --nbval-current-env \
  --nbval-kernel-startup-timeout=120 -x -v --durations=0
nbval: $(STAMP)
	CAPTION_PROFILE=ci $(PY) $(NBVAL) --nbval-cell-timeout=900

# nbval on a GPU kernel (profile gpu: 2,000 generated pictures, the full-size decoder,
# about 10 minutes on one GPU). Installs the gpu extra; without a GPU it stops at once.
test-gpu:
	$(MAKE) gpu-nbval EXTRAS=dev,gpu
gpu-nbval: $(STAMP)
	CAPTION_PROFILE=gpu $(PY) -m helpers.run --check-device
	CAPTION_PROFILE=gpu $(PY) $(NBVAL) --nbval-cell-timeout=1800

# The full run on real Flickr8k with ImageNet VGG16 (a GPU machine with internet;
# FLICKR8K_PROFILE=flickr8k-cpu on a CPU). The device is checked before any download.
FLICKR8K_PROFILE ?= flickr8k
flickr8k: $(STAMP)
	CAPTION_PROFILE=$(FLICKR8K_PROFILE) $(PY) -m helpers.run --check-device
	$(PY) -m helpers.data download flickr8k --to data/
	$(PY) -m helpers.data inspect data/flickr8k
	CAPTION_PROFILE=$(FLICKR8K_PROFILE) $(PY) -m helpers.run

test-full: $(STAMP)
	CAPTION_PROFILE=$(FLICKR8K_PROFILE) $(PY) -m helpers.run --check-device
	CAPTION_PROFILE=$(FLICKR8K_PROFILE) $(PY) $(NBVAL) --nbval-cell-timeout=36000
