# Free-text sample metadata -> Cell Ontology terms (pronto).

if config["ontology"].get("url"):
    if Path(config["ontology"]["obo"]).resolve() == Path(SNAPSHOT_OBO).resolve():
        raise ValueError(
            f"config ontology.url is set: ontology.obo must name where the download goes, "
            f"not the pinned snapshot {SNAPSHOT_OBO}"
        )

    # the configured release (production: the current cl-basic.obo), downloaded once into
    # resources/, sha256-verified when ontology.sha256 is set, checked to load before use
    rule ontology_download:
        output:
            config["ontology"]["obo"],
        log:
            f"{LOGS}/ontology/download.log",
        localrule: True
        conda:
            "../../envs/python.yaml"
        params:
            url=config["ontology"]["url"],
            sha256=config["ontology"]["sha256"],
        script:
            "../../scripts/download_ontology.py"


rule cell_types:
    input:
        h5ad=f"{RESULTS}/studies/{{study}}/expression.h5ad",
        obo=config["ontology"]["obo"],
    output:
        f"{RESULTS}/studies/{{study}}/cell_types.tsv",
    log:
        f"{LOGS}/cell_types/{{study}}.log",
    conda:
        "../../envs/python.yaml"
    params:
        overrides=config["ontology"]["overrides"],
        specialise_by_tissue=config["ontology"]["specialise_by_tissue"],
        min_confidence=config["ontology"]["min_confidence"],
    script:
        "../../scripts/map_cell_types.py"
