# Models: cell-embedding models (torch; package scatlas.models). GPU rules: train.gpus GPUs are asked for (resource gpu; 0 asks
# for none); train.device auto uses a GPU when one is visible and the CPU otherwise.
# The ontology keeps ancestor/descendant types from being triplet negatives; the novelty
# hold-out (evaluate.novelty_holdout) keeps a type out of training for the evaluation.


rule train:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        obo=config["ontology"]["obo"],
    output:
        encoder=f"{RESULTS}/models/{{model}}/encoder.pt",
        meta=f"{RESULTS}/models/{{model}}/model.json",
        history=f"{RESULTS}/models/{{model}}/history.tsv",
    log:
        f"{LOGS}/train/{{model}}.log",
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpus"],
    params:
        model_params=lambda wc: config["train"].get(wc.model, {}),
        seed=config["train"]["seed"],
        device=config["train"]["device"],
        holdout=config["evaluate"]["novelty_holdout"],
    script:
        "../../scripts/train_model.py"


# The published model: the best by publish.select_by (or publish.model), trained again on
# every type when the evaluation held one out (scatlas.models.release_model).
rule release_model:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
        obo=config["ontology"]["obo"],
        metrics=f"{RESULTS}/evaluation/metrics.tsv",
        models=expand(f"{RESULTS}/models/{{model}}/model.json", model=config["models"]),
    output:
        encoder=f"{RESULTS}/models/release/encoder.pt",
        meta=f"{RESULTS}/models/release/model.json",
        history=f"{RESULTS}/models/release/history.tsv",
        choice=f"{RESULTS}/models/release/choice.json",
    log:
        f"{LOGS}/train/release.log",
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpus"],
    params:
        publish=config["publish"],
        train=config["train"],
        models=config["models"],
    script:
        "../../scripts/release_model.py"
