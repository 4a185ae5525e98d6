# Frozen, versioned reference release; the demo annotates its held-out study with it.


rule publish:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        model=f"{RESULTS}/models/{config['publish']['model']}/model.json",
        evaluation=f"{RESULTS}/evaluation/metrics.tsv",
        de=f"{RESULTS}/de",
        obo=config["ontology"]["obo"],
    output:
        release=f"{RESULTS}/publish/release.json",
    params:
        publish_dir=PUBLISH_DIR,
        publish=config["publish"],
    log:
        f"{LOGS}/publish/publish.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/publish_release.py"


rule demo_query:
    input:
        release=f"{RESULTS}/publish/release.json",
        query=config["demo"]["query_input"] or [],
    output:
        h5ad=f"{RESULTS}/demo/query_annotated.h5ad",
        csv=f"{RESULTS}/demo/query_annotated.csv",
        accuracy=f"{RESULTS}/demo/query_accuracy.json",
    params:
        truth=config["demo"]["truth_column"],
        k=config["evaluate"]["k"],
    log:
        f"{LOGS}/demo/query.log",
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/demo_query.py"
