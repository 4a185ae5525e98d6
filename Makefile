# The README's two commands. Each does its own set-up on a fresh Debian machine (as root):
# Debian tools when missing, Python packages into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := hisat2 samtools subread r-base-core r-bioc-edger r-bioc-limma r-bioc-org.hs.eg.db r-bioc-go.db
DEMO_OUT ?= results
PYTEST_ARGS ?=

.PHONY: demo test setup tools venv lint clean

demo: setup
	$(BIN)/scatlas demo

test: setup
	$(BIN)/ruff check scripts tests benchmarks
	$(BIN)/snakemake --lint --configfile config/demo.yaml
	$(BIN)/pytest $(PYTEST_ARGS)

setup: tools venv

# Debian tools the workflow runs; installed only when missing.
tools:
	@missing=""; \
	command -v hisat2 >/dev/null || missing="$$missing hisat2"; \
	command -v samtools >/dev/null || missing="$$missing samtools"; \
	command -v featureCounts >/dev/null || missing="$$missing subread"; \
	command -v Rscript >/dev/null || missing="$$missing r-base-core"; \
	if command -v Rscript >/dev/null; then \
	  Rscript -e 'suppressMessages(library(edgeR)); suppressMessages(library(limma))' >/dev/null 2>&1 || missing="$$missing r-bioc-edger r-bioc-limma"; \
	  Rscript -e 'stopifnot(requireNamespace("org.Hs.eg.db", quietly=TRUE), requireNamespace("GO.db", quietly=TRUE))' >/dev/null 2>&1 || missing="$$missing r-bioc-org.hs.eg.db r-bioc-go.db"; \
	else missing="$$missing r-bioc-edger r-bioc-limma r-bioc-org.hs.eg.db r-bioc-go.db"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

# torch is installed first, pinned, so that the CPU wheel is used and nothing pulls CUDA.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

lint: setup
	$(BIN)/ruff check scripts tests benchmarks
	$(BIN)/snakemake --lint --configfile config/demo.yaml

clean:
	rm -rf results published logs .snakemake resources/demo-world
