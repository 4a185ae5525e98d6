# Study-held-out retrieval, annotation and novelty: models against baselines and CellTypist;
# clustering of the query cells (ScLSTM's cell-type detection) against PCA + Ward / Leiden.


rule evaluate:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        models=expand(f"{RESULTS}/models/{{model}}/model.json", model=config["models"]),
        obo=config["ontology"]["obo"],
    output:
        report=report(
            f"{RESULTS}/evaluation/report.html",
            caption="../report/evaluation.rst",
            category="Evaluation",
        ),
        metrics=report(
            f"{RESULTS}/evaluation/metrics.tsv",
            caption="../report/metrics.rst",
            category="Evaluation",
        ),
        per_type=report(
            f"{RESULTS}/evaluation/per_type_f1.tsv",
            caption="../report/per_type_f1.rst",
            category="Evaluation",
        ),
        clustering=report(
            f"{RESULTS}/evaluation/clustering.tsv",
            caption="../report/clustering.rst",
            category="Evaluation",
        ),
        confusion=f"{RESULTS}/evaluation/confusion.tsv",
    log:
        f"{LOGS}/evaluate/evaluate.log",
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        k=config["evaluate"]["k"],
        models=config["models"],
        holdout=config["evaluate"]["novelty_holdout"],
        celltypist=config["evaluate"]["celltypist"],
        plot=config["evaluate"]["plot"],
    script:
        "../../scripts/evaluate_models.py"
