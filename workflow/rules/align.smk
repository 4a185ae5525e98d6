# HISAT2 per run (one job per study: runs are aligned in turn, BAMs are temporary).
# Per-cell runs single- or paired-end; barcoded runs (10x, Drop-seq) align their cDNA read
# with the cell barcode and UMI in the read name.


rule align:
    input:
        manifest=f"{RESULTS}/fastq/{{study}}/manifest.tsv",
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        index=lambda wc: f"resources/genomes/{study_genome(wc)}/hisat2",
    output:
        table=f"{RESULTS}/align/{{study}}/alignment.tsv",
        bams=temp(directory(f"{RESULTS}/align/{{study}}/bam")),
    params:
        min_rate=config["align"]["min_alignment_rate"],
        chemistries=config["barcoded"]["chemistries"],
        run_logs=lambda wc: f"{LOGS}/align/{wc.study}",
    log:
        f"{LOGS}/align/{{study}}.log",
    benchmark:
        f"{LOGS}/benchmarks/align/{{study}}.tsv"
    threads: config["align"]["threads"]
    conda:
        "../../envs/align.yaml"
    script:
        "../../scripts/align_study.py"
