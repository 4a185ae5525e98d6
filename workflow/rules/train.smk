# Cell-embedding models (torch). GPU rules: resources gpu=1; they fall back to the CPU.


rule train:
    input:
        atlas=f"{RESULTS}/atlas/atlas.h5ad",
    output:
        encoder=f"{RESULTS}/models/{{model}}/encoder.pt",
        meta=f"{RESULTS}/models/{{model}}/model.json",
        history=f"{RESULTS}/models/{{model}}/history.tsv",
    params:
        model_params=lambda wc: config["train"][wc.model],
        seed=config["train"]["seed"],
        device=config["train"]["device"],
    log:
        f"{LOGS}/train/{{model}}.log",
    threads: 2
    resources:
        gpu=1,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train_model.py"
