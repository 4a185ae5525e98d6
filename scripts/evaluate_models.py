"""Rule evaluate: study-held-out kNN annotation, retrieval and novelty; models against the
baselines and the CellTypist peer."""

from pathlib import Path

from scatlas.evaluate.metrics import evaluate
from scatlas.logs import setup_logging
from scatlas.ontology import load_ontology

setup_logging(snakemake.log[0])
evaluate(
    Path(snakemake.input.atlas),
    {
        m: Path(p).parent
        for m, p in zip(snakemake.params.models, snakemake.input.models, strict=True)
    },
    Path(snakemake.output.report).parent,
    k=snakemake.params.k,
    ontology=load_ontology(Path(snakemake.input.obo)),
    holdout=snakemake.params.holdout,
    celltypist=snakemake.params.celltypist,
    plot=snakemake.params.plot,
)
