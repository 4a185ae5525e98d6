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
