# The README's two commands: `make demo` and `make test`.
# Both create .venv from a Python >= 3.12 on first use and install -e .[dev,dask] (Dask is an optional extra for users; its tests run here).
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

FIND_PYTHON := for p in python3.12 python3.13 python3.14 python3 python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
	then command -v $$p; break; fi; done

.PHONY: demo test validate bench lint clean

$(STAMP): pyproject.toml
	@base="$$($(FIND_PYTHON))"; \
	if [ -z "$$base" ]; then echo "bayesgmm needs Python >= 3.12 (PyMC 6 does not install on older Pythons); install one, e.g. 'pyenv install 3.12', and rerun."; exit 1; fi; \
	if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$base"; "$$base" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,dask]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesgmm demo --force

test: $(STAMP)
	$(PY) -m pytest -q

validate: $(STAMP)
	$(PY) -m pytest -q -m slow
	$(PY) -m bayesgmm.validation.sbc
	$(PY) -m bayesgmm.validation.agreement
	$(PY) -m bayesgmm.validation.selection_report
	$(PY) -m bayesgmm.validation.structure_report
	$(PY) -m bayesgmm.validation.noise_report
	$(PY) -m bayesgmm.validation.missing_report
	$(PY) -m bayesgmm.validation.k_stability

bench: $(STAMP)
	$(PY) -m bayesgmm.validation.bench_em
	$(PY) -m bayesgmm.validation.bench_bayes
	$(PY) -m bayesgmm.validation.bench_kernel
	$(PY) -m bayesgmm.validation.bench_scale

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesgmm tests

clean:
	rm -rf $(VENV) .pytest_cache
