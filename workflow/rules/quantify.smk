# featureCounts on a study's BAMs in one call; per-study AnnData with counts and RPKM.


rule count:
    input:
        table=f"{RESULTS}/align/{{study}}/alignment.tsv",
        bams=f"{RESULTS}/align/{{study}}/bam",
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        gtf=lambda wc: f"resources/genomes/{study_genome(wc)}/genes.gtf",
    output:
        counts=f"{RESULTS}/counts/{{study}}/counts.tsv",
    params:
        strandedness=config["quant"]["strandedness"],
    log:
        f"{LOGS}/count/{{study}}.log",
    threads: config["quant"]["threads"]
    conda:
        "../../envs/align.yaml"
    script:
        "../../scripts/count_study.py"


rule expression:
    input:
        unpack(expression_inputs),
    output:
        h5ad=f"{RESULTS}/studies/{{study}}/expression.h5ad",
    log:
        f"{LOGS}/expression/{{study}}.log",
    conda:
        "../../envs/python.yaml"
    script:
        "../../scripts/build_expression.py"
