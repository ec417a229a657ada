# StemProver: the Makefile is the contract. CI only calls `make test`.
#   make reproduce [PROFILE=auto|smoke|cpu|gpu] [FROM=NN]   notebooks 01-08, then the paper
#   make test                                               lint, unit tests, nbval, smoke paper,
#                                                           the smoke listening page in chromium,
#                                                           the smoke paper's layout and pages
SHELL := /bin/bash
PY := .venv/bin/python
PROFILE ?= auto
FROM ?= 01

.PHONY: install test lint unit nbval reproduce paper clean

install:
	@bash .ci/install.sh

lint: install
	$(PY) -m ruff check stemprover tests

unit: install
	$(PY) -m pytest -q tests

nbval: install
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --sanitize-with notebooks/sanitize.cfg notebooks/

test: lint unit nbval
	$(MAKE) --no-print-directory paper PROFILE=smoke
	$(PY) -m pytest -q -p no:cacheprovider tests/test_listening_browser.py -k built_smoke_page
	$(PY) -m pytest -q -p no:cacheprovider tests/test_paper_pages.py -k built_smoke_paper

reproduce: install
	$(PY) -m stemprover.stages.reproduce --profile $(PROFILE) --from $(FROM)

paper: install
	$(PY) -m stemprover.stages.reproduce --profile $(PROFILE) --paper-only

clean:
	rm -rf build paper/build results/smoke
