# The README's two commands. Each does its own set-up on a fresh Debian machine (as root):
# Debian tools when missing, Python packages into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= results
PYTEST_ARGS ?=

.PHONY: demo test setup tools venv lint envs clean

demo: setup
	$(BIN)/scatlas demo

test: setup
	$(BIN)/ruff check scripts tests benchmarks
	$(BIN)/ruff format --check scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint --configfile config/demo.yaml
	$(BIN)/pytest $(PYTEST_ARGS)

setup: tools venv

# Debian tools the workflow and its tests run (chromium + chromium-driver: the browser tests of
# scatlas serve), installed only when missing: each entry is
# "command:package" (the command proves the package is there). HISAT2's splice-site and exon
# helper scripts are not needed: scatlas computes those files from the GTF itself.
TOOL_PACKAGES := hisat2:hisat2 hisat2-build:hisat2 samtools:samtools featureCounts:subread \
	fasterq-dump:sra-toolkit Rscript:r-base-core \
	slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
	chromium:chromium chromedriver:chromium-driver
R_PACKAGES := edgeR:r-bioc-edger limma:r-bioc-limma org.Hs.eg.db:r-bioc-org.hs.eg.db GO.db:r-bioc-go.db

tools:
	@missing=""; \
	for pair in $(TOOL_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	for pair in $(R_PACKAGES); do \
	  command -v Rscript >/dev/null && Rscript -e "quit(status = !requireNamespace('$${pair%%:*}', quietly = TRUE))" >/dev/null 2>&1 \
	    || missing="$$missing $${pair#*:}"; \
	done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install: $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# torch is installed first, pinned, so that the CPU wheel is used and nothing pulls CUDA.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# the per-rule conda environments, from pyproject.toml's pins (tests/test_envs.py checks them)
envs:
	$(PYTHON) envs/generate.py

lint: setup
	$(BIN)/ruff check scripts tests benchmarks
	$(BIN)/ruff format --check scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint --configfile config/demo.yaml

clean:
	rm -rf results published logs .snakemake resources/demo-world
