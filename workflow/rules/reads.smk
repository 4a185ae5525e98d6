# Reads to expression: genome and HISAT2 index (built once, cached); HISAT2 per run (one
# job per study, BAMs temporary; barcoded runs carry barcode and UMI in the read name);
# featureCounts, molecules per cell of barcoded runs, the per-study AnnData with counts and
# RPKM. Package: scatlas.reads.


rule reference_files:
    output:
        fasta=f"resources/genomes/{{genome}}/genome.fa",
        gtf=f"resources/genomes/{{genome}}/genes.gtf",
    log:
        f"{LOGS}/reference/{{genome}}.files.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    params:
        fasta=lambda wc: reference_spec(wc.genome)["fasta"],
        gtf=lambda wc: reference_spec(wc.genome)["gtf"],
    script:
        "../../scripts/reference_files.py"


rule hisat2_index:
    input:
        fasta=f"resources/genomes/{{genome}}/genome.fa",
        gtf=f"resources/genomes/{{genome}}/genes.gtf",
    output:
        index=directory(f"resources/genomes/{{genome}}/hisat2"),
        genes=f"resources/genomes/{{genome}}/genes.tsv",
    log:
        f"{LOGS}/reference/{{genome}}.hisat2_build.log",
    # built once per genome: with --cache (and SNAKEMAKE_OUTPUT_CACHE set) another workflow
    # directory reuses it from the cache (keyed by the FASTA, GTF, params and this rule)
    cache: "omit-software"
    conda:
        "../../envs/align.yaml"
    threads: config["align"]["index_threads"]
    params:
        # a splice-aware index of a mammalian genome needs ~160 GB of memory
        splice_aware=lambda wc: reference_spec(wc.genome).get("splice_aware", True),
    script:
        "../../scripts/hisat2_index.py"


rule align:
    input:
        manifest=f"{RESULTS}/fastq/{{study}}/manifest.tsv",
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        index=lambda wc: f"resources/genomes/{study_genome(wc)}/hisat2",
    output:
        table=f"{RESULTS}/align/{{study}}/alignment.tsv",
        bams=temp(directory(f"{RESULTS}/align/{{study}}/bam")),
    log:
        f"{LOGS}/align/{{study}}.log",
    benchmark:
        f"{LOGS}/benchmarks/align/{{study}}.tsv"
    conda:
        "../../envs/align.yaml"
    threads: config["align"]["threads"]
    params:
        min_rate=config["align"]["min_alignment_rate"],
        chemistries=config["barcoded"]["chemistries"],
        run_logs=lambda wc: f"{LOGS}/align/{wc.study}",
    script:
        "../../scripts/align_study.py"


rule count:
    input:
        table=f"{RESULTS}/align/{{study}}/alignment.tsv",
        bams=f"{RESULTS}/align/{{study}}/bam",
        samples=f"{RESULTS}/studies/{{study}}/samples.tsv",
        gtf=lambda wc: f"resources/genomes/{study_genome(wc)}/genes.gtf",
    output:
        counts=f"{RESULTS}/counts/{{study}}/counts.tsv",
        umi=f"{RESULTS}/counts/{{study}}/umi.h5ad",
    log:
        f"{LOGS}/count/{{study}}.log",
    benchmark:
        f"{LOGS}/benchmarks/count/{{study}}.tsv"
    conda:
        "../../envs/align.yaml"
    threads: config["quant"]["threads"]
    params:
        strandedness=config["quant"]["strandedness"],
        chemistries=config["barcoded"]["chemistries"],
        cell_calling=config["barcoded"]["cell_calling"],
        min_reads_per_cell=config["barcoded"]["min_reads_per_cell"],
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
