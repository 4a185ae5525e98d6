# HISAT2 per run (one job per study: runs are aligned in turn, BAMs are temporary).


rule align:
    input:
        manifest=f"{RESULTS}/fastq/{{study}}/manifest.tsv",
        index=lambda wc: f"resources/genomes/{study_genome(wc)}/hisat2",
    output:
        table=f"{RESULTS}/align/{{study}}/alignment.tsv",
        bams=temp(directory(f"{RESULTS}/align/{{study}}/bam")),
    params:
        min_rate=config["align"]["min_alignment_rate"],
    log:
        f"{LOGS}/align/{{study}}.log",
    threads: config["align"]["threads"]
    conda:
        "../../envs/align.yaml"
    script:
        "../../scripts/align_study.py"
