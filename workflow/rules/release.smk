# Release: the frozen, versioned reference behind the quality gate. Package: scatlas.release.


rule publish:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        model=f"{RESULTS}/models/release/model.json",
        evaluation=f"{RESULTS}/evaluation/metrics.tsv",
        de=f"{RESULTS}/de",
        obo=config["ontology"]["obo"],
    output:
        release=report(
            f"{RESULTS}/publish/release.json",
            caption="../report/release.rst",
            category="Release",
        ),
    log:
        f"{LOGS}/publish/publish.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        publish_dir=PUBLISH_DIR,
        publish=config["publish"],
    script:
        "../../scripts/publish_release.py"
