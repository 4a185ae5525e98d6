# Free-text sample metadata -> Cell Ontology terms (pronto).


rule cell_types:
    input:
        h5ad=f"{RESULTS}/studies/{{study}}/expression.h5ad",
        obo=config["ontology"]["obo"],
    output:
        f"{RESULTS}/studies/{{study}}/cell_types.tsv",
    params:
        overrides=config["ontology"]["overrides"],
    log:
        f"{LOGS}/cell_types/{{study}}.log",
    conda:
        "../../envs/python.yaml"
    script:
        "../../scripts/map_cell_types.py"
