# `make demo` runs the notebook series on the embedded sample; `make test` runs all tests.
# Any Python 3.11, 3.12 or 3.13; `make PYTHON=python3.13 demo` picks one.
PYTHON ?= python3
PYTHON_CHECK := import sys; v = sys.version_info[:2]; sys.exit(None if (3, 11) <= v <= (3, 13) \
  else f"{sys.executable} is Python {v[0]}.{v[1]}: use 3.11, 3.12 or 3.13 (make PYTHON=...)")
VENV := .venv
PY := $(VENV)/bin/python
# pyproject.toml's extras; `make flickr8k EXTRAS=run,lab,web,dev,gpu` on Linux with an
# NVIDIA GPU. The versions installed are the ones pinned in .ci/constraints.txt.
EXTRAS ?= run,lab,web,dev
CONSTRAINTS := .ci/constraints.txt
STAMP := $(VENV)/.installed-$(EXTRAS)
export TF_CPP_MIN_LOG_LEVEL := 3
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: demo lab test lint unit notebooks-stripped nbval flickr8k test-full test-gpu gpu-nbval \
  report lock test-hosted

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c '$(PYTHON_CHECK)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	$(PY) -m helpers.run --register-kernel
	touch $(STAMP)

demo: $(STAMP)
	CAPTION_PROFILE=sample $(PY) -m helpers.run

# .ci/constraints.txt anew from pyproject.toml's ranges: the newest versions that
# resolve, in a throwaway environment. Run `make test` and `make test-hosted` after it.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[run,lab,web,dev]'
	{ sed -n '1,2p' $(CONSTRAINTS); .lock-venv/bin/pip freeze --exclude captioning-helpers; } \
	  > $(CONSTRAINTS).new && mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .lock-venv

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

# --dist loadfile: each test file on one worker, so its module fixtures are built once,
# not once per worker (a sixth less CPU for the whole suite).
unit: $(STAMP)
	$(PY) -m pytest tests/ -q -n 2 --dist loadfile --durations=12

notebooks-stripped: $(STAMP)
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

NBVAL = -m pytest notebooks/ -p no:python --nbval-lax --nbval-current-env \
  --nbval-kernel-startup-timeout=120 -x -v --durations=0
nbval: $(STAMP)
	CAPTION_PROFILE=ci $(PY) $(NBVAL) --nbval-cell-timeout=900

# The series as Colab and Kaggle run it, on Python 3.12/3.13 with their own versions of
# TensorFlow, Keras, ipykernel and ipywidgets (tests/hosted/run says how). Needs `git`
# and the project's .venv (it writes the data); builds a Python 3.13 once if none is here.
test-hosted: $(STAMP)
	tests/hosted/run

# nbval on a GPU kernel (profile gpu: 2,000 generated pictures, the full-size decoder,
# about 10 minutes on one GPU). Installs the gpu extra; without a GPU it stops at once.
test-gpu:
	$(MAKE) gpu-nbval EXTRAS=run,lab,web,dev,gpu
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
