# `make demo` runs the notebook series on the embedded sample; `make test` runs all tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: demo test unit notebooks-stripped nbval

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	CAPTION_PROFILE=sample $(PY) -m helpers.run

test: unit notebooks-stripped nbval

unit: $(STAMP)
	$(PY) -m pytest tests/ -q

notebooks-stripped: $(STAMP)
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

nbval: $(STAMP)
	CAPTION_PROFILE=ci $(PY) -m pytest notebooks/ -p no:python --nbval-lax \
	  --nbval-current-env --nbval-cell-timeout=900 --nbval-kernel-startup-timeout=120 \
	  -x -v --durations=0
