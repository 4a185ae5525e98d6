# Study-held-out retrieval and annotation, models against baselines.


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
        metrics=f"{RESULTS}/evaluation/metrics.tsv",
    params:
        k=config["evaluate"]["k"],
        models=config["models"],
    log:
        f"{LOGS}/evaluate/evaluate.log",
    threads: 2
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/evaluate_models.py"
