# One atlas: union of the studies, QC, study-disjoint train/validation/query split. Labelled
# files of one's own (local_studies) join as studies local-<name> (scatlas.atlas.local_study).


rule local_study:
    input:
        path=lambda wc: LOCAL_STUDIES[wc.name]["path"],
        genes=lambda wc: local_genes_table(),
        obo=config["ontology"]["obo"],
    output:
        expression=f"{RESULTS}/studies/local-{{name}}/expression.h5ad",
        cell_types=f"{RESULTS}/studies/local-{{name}}/cell_types.tsv",
    log:
        f"{LOGS}/local_study/{{name}}.log",
    conda:
        "../../envs/train.yaml"
    params:
        entry=lambda wc: LOCAL_STUDIES[wc.name],
    script:
        "../../scripts/local_study.py"


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
