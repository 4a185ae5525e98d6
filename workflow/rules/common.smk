# Configuration, sheets and input functions shared by every stage.

import re
from pathlib import Path

import pandas as pd
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

# absolute, because sheets are also validated after parsing (in input functions)
SCHEMAS = Path(str(workflow.current_basedir)).parent.resolve() / "schemas"
RESULTS = "results"
LOGS = "logs"
PUBLISH_DIR = config["publish_dir"]


wildcard_constraints:
    study=r"GSE\d+|E-[A-Z]{4}-\d+",
    model=r"[a-z]+",
    genome=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def read_sheet(path, schema):
    """Read a TSV sheet as text and validate it against its schema."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    validate(df, schema=schema)
    return df


def kept_studies():
    """Rows of the query's studies table that go downstream (known after the checkpoint)."""
    path = checkpoints.query.get().output.studies
    df = read_sheet(path, str(SCHEMAS / "studies.schema.yaml"))
    return df[df["status"] == "ok"].set_index("study", drop=False)


def study_row(study):
    return kept_studies().loc[study]


def study_fingerprint(study):
    """What the query knows of a study; a change upstream re-runs its sample sheet."""
    row = study_row(study)
    return "|".join(row[c] for c in ("title", "organism", "kind", "n_samples", "updated"))


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
    }
    if study_row(wildcards.study)["kind"] == "reads":
        inputs["counts"] = f"{RESULTS}/counts/{wildcards.study}/counts.tsv"
        inputs["alignment"] = f"{RESULTS}/align/{wildcards.study}/alignment.tsv"
    else:
        inputs["manifest"] = f"{RESULTS}/fastq/{wildcards.study}/manifest.tsv"
    return inputs


def atlas_studies():
    """Studies of the atlas organism that have a reference genome."""
    df = kept_studies()
    return sorted(df.loc[df["organism"] == config["atlas"]["organism"], "study"])


def all_studies():
    df = kept_studies()
    return sorted(df.loc[df["organism"].isin(config["reference"].keys()), "study"])


def final_outputs():
    outputs = [
        f"{RESULTS}/catalog/update.json",
        f"{RESULTS}/evaluation/report.html",
        f"{RESULTS}/de",
        f"{RESULTS}/publish/release.json",
    ]
    if config["demo"]["query_input"]:
        outputs.append(f"{RESULTS}/demo/query_accuracy.json")
    return outputs
