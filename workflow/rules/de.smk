# Per-study differential expression per cell type, combined across studies.


rule de:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        obo=config["ontology"]["obo"],
    output:
        directory(f"{RESULTS}/de"),
    log:
        f"{LOGS}/de/de.log",
    conda:
        "../../envs/de.yaml"
    params:
        de=config["de"],
        organism=config["atlas"]["organism"],
    script:
        "../../scripts/run_de.py"
