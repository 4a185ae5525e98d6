# Configuration, sheets and input functions shared by every stage.

import json
import os
import re
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from scatlas.settings import config_error

if "query" in config:
    raise ValueError(
        "config: the section 'query:' (which studies to take from GEO and ArrayExpress) is "
        "now called 'discover:'; rename it (its keys are unchanged)"
    )
# a config mistake in a few lines (key path, allowed values); Snakemake's own validation,
# which then fills the defaults, would print the whole schema and config with it
_config_problem = config_error(config)
if _config_problem:
    raise WorkflowError(_config_problem)
validate(config, schema="../schemas/config.schema.yaml")

if config["publish"]["model"] not in ("auto", *config["models"]):
    raise ValueError(
        f"config: publish.model is {config['publish']['model']!r}, which is not among models "
        f"({', '.join(config['models'])}); add it to models, or use auto"
    )

# the checkout this workflow runs from (workflow/rules/ -> the repository)
REPO_DIR = Path(str(workflow.current_basedir)).parents[1].resolve()
# the pinned Cell Ontology snapshot: package data of scatlas (scatlas.package_data)
SNAPSHOT_OBO = str(
    REPO_DIR / "scripts" / "scatlas" / "data" / "ontology" / "cl-basic.obo"
)
if not config["ontology"]["obo"]:
    config["ontology"]["obo"] = SNAPSHOT_OBO
elif str(config["ontology"]["obo"]).startswith("cellxgene-ontology-guide"):
    # a CL release shipped by the PyPI package (JSON), e.g. cellxgene-ontology-guide:v2026-03-26
    from scatlas.ontology.releases import ontology_file

    config["ontology"]["obo"] = str(ontology_file(config["ontology"]["obo"]))

# Rule scripts read the config through one typed layer, scatlas.settings.Settings (defaults:
# the schema's). A rule's params name the config sections it depends on, so that a change
# to them re-runs it (rerun trigger: params).

# absolute, because sheets are also validated after parsing (in input functions)
SCHEMAS = Path(str(workflow.current_basedir)).parent.resolve() / "schemas"
RESULTS = "results"
LOGS = "logs"
PUBLISH_DIR = config["publish_dir"]


# labelled files of one's own: name -> entry (config local_studies)
LOCAL_STUDIES = {entry["name"]: entry for entry in config["local_studies"]}


wildcard_constraints:
    study=r"GSE\d+|E-[A-Z]{4}-\d+",
    model="|".join(config["models"]),
    genome=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    name=r"[A-Za-z0-9_]+",


def read_sheet(path, schema):
    """Read a TSV sheet as text and validate it against its schema."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    validate(df, schema=schema)
    return df


_KEPT_CACHE = {}


def kept_studies():
    """Rows of the query's studies table that go downstream (known after the checkpoint).

    Read and validated once per version of the file (input functions call this for every
    job: with thousands of studies, re-reading it each time made the DAG quadratic)."""
    path = checkpoints.discover.get().output.studies
    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _KEPT_CACHE:
        df = read_sheet(path, str(SCHEMAS / "studies.schema.yaml"))
        _KEPT_CACHE.clear()
        _KEPT_CACHE[key] = df[df["status"] == "ok"].set_index("study", drop=False)
    return _KEPT_CACHE[key]


def study_row(study):
    return kept_studies().loc[study]


def study_fingerprint(study):
    """What the query knows of a study; a change upstream re-runs its sample sheet (and,
    through it, that study's downloads and everything after them), nothing else."""
    row = study_row(study)
    if row.get(
        "fingerprint", ""
    ):  # digest of the upstream record (esummary / BioStudies)
        return f"{row['fingerprint']}|{row['organism']}|{row['kind']}"
    return "|".join(
        row[c] for c in ("title", "organism", "kind", "n_samples", "updated")
    )


def discover_fingerprint():
    """The query's settings (and the refresh window): a change re-runs the query."""
    return json.dumps(config["discover"], sort_keys=True, default=str)


def genome_of(organism):
    """The reference genome name configured for an organism."""
    try:
        return config["reference"][organism]["name"]
    except KeyError:
        raise ValueError(
            f"no reference genome configured for organism {organism!r} "
            f"(config key reference: {organism!r})"
        ) from None


def study_genome(wildcards):
    return genome_of(study_row(wildcards.study)["organism"])


def genome_dir(genome):
    return f"resources/genomes/{genome}"


def reference_spec(genome):
    for organism, spec in config["reference"].items():
        if spec["name"] == genome:
            return spec
    raise ValueError(f"genome {genome!r} is not configured under reference:")


def expression_inputs(wildcards):
    inputs = {
        "samples": f"{RESULTS}/studies/{wildcards.study}/samples.tsv",
        "meta": f"{RESULTS}/studies/{wildcards.study}/study.json",
        "genes": f"resources/genomes/{study_genome(wildcards)}/genes.tsv",
        # reads studies too: samples of a droplet protocol scatlas does not count itself
        # come as author matrices
        "manifest": f"{RESULTS}/fastq/{wildcards.study}/manifest.tsv",
    }
    if study_row(wildcards.study)["kind"] == "reads":
        inputs["counts"] = f"{RESULTS}/counts/{wildcards.study}/counts.tsv"
        inputs["umi"] = f"{RESULTS}/counts/{wildcards.study}/umi.h5ad"
        inputs["alignment"] = f"{RESULTS}/align/{wildcards.study}/alignment.tsv"
    return inputs


def atlas_studies():
    """Studies of the atlas organism that have a reference genome, and the local ones."""
    df = kept_studies()
    found = sorted(df.loc[df["organism"] == config["atlas"]["organism"], "study"])
    return found + [f"local-{name}" for name in LOCAL_STUDIES]


def local_genes_table():
    """The atlas genome's gene table (local studies' symbols become its ids), if any."""
    spec = config["reference"].get(config["atlas"]["organism"])
    return [f"{genome_dir(spec['name'])}/genes.tsv"] if spec else []


def all_studies():
    df = kept_studies()
    return sorted(df.loc[df["organism"].isin(config["reference"].keys()), "study"])


def final_outputs():
    outputs = [
        f"{RESULTS}/catalog/update.json",
        f"{RESULTS}/evaluation/report.html",
        f"{RESULTS}/de",
        f"{RESULTS}/publish/release.json",
        f"{RESULTS}/report/report.html",
    ]
    if config["demo"]["query_input"]:
        outputs.append(f"{RESULTS}/demo/query_accuracy.json")
    return outputs
