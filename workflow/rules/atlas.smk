# One atlas: union of the studies, QC, study-disjoint train/validation/query split.


rule atlas:
    input:
        expression=lambda wc: expand(
            f"{RESULTS}/studies/{{study}}/expression.h5ad", study=atlas_studies()
        ),
        cell_types=lambda wc: expand(
            f"{RESULTS}/studies/{{study}}/cell_types.tsv", study=atlas_studies()
        ),
        obo=config["ontology"]["obo"],
    output:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        splits=f"{RESULTS}/atlas/splits.tsv",
    log:
        f"{LOGS}/atlas/atlas.log",
    conda:
        "../../envs/python.yaml"
    params:
        atlas=config["atlas"],
    script:
        "../../scripts/assemble_atlas.py"
