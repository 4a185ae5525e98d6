# featureCounts on a study's BAMs in one call (one per kind of run); molecules per cell of
# barcoded runs; per-study AnnData with counts and RPKM.


rule count:
    input:
        table=f"{RESULTS}/align/{{study}}/alignment.tsv",
        bams=f"{RESULTS}/align/{{study}}/bam",
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        gtf=lambda wc: f"resources/genomes/{study_genome(wc)}/genes.gtf",
    output:
        counts=f"{RESULTS}/counts/{{study}}/counts.tsv",
        umi=f"{RESULTS}/counts/{{study}}/umi.h5ad",
    params:
        strandedness=config["quant"]["strandedness"],
        chemistries=config["barcoded"]["chemistries"],
        cell_calling=config["barcoded"]["cell_calling"],
        min_reads_per_cell=config["barcoded"]["min_reads_per_cell"],
    log:
        f"{LOGS}/count/{{study}}.log",
    benchmark:
        f"{LOGS}/benchmarks/count/{{study}}.tsv"
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
