# Genome FASTA + GTF per organism, the gene table and the HISAT2 index (built once, cached).


rule reference_files:
    output:
        fasta=f"resources/genomes/{{genome}}/genome.fa",
        gtf=f"resources/genomes/{{genome}}/genes.gtf",
    params:
        fasta=lambda wc: reference_spec(wc.genome)["fasta"],
        gtf=lambda wc: reference_spec(wc.genome)["gtf"],
    log:
        f"{LOGS}/reference/{{genome}}.files.log",
    localrule: True
    conda:
        "../../envs/ingest.yaml"
    script:
        "../../scripts/reference_files.py"


rule hisat2_index:
    input:
        fasta=f"resources/genomes/{{genome}}/genome.fa",
        gtf=f"resources/genomes/{{genome}}/genes.gtf",
    output:
        index=directory(f"resources/genomes/{{genome}}/hisat2"),
        genes=f"resources/genomes/{{genome}}/genes.tsv",
    params:
        # a splice-aware index of a mammalian genome needs ~160 GB of memory
        splice_aware=lambda wc: reference_spec(wc.genome).get("splice_aware", True),
    log:
        f"{LOGS}/reference/{{genome}}.hisat2_build.log",
    threads: config["align"]["index_threads"]
    # built once per genome: with --cache (and SNAKEMAKE_OUTPUT_CACHE set) another workflow
    # directory reuses it from the cache (keyed by the FASTA, GTF, params and this rule)
    cache: "omit-software"
    conda:
        "../../envs/align.yaml"
    script:
        "../../scripts/hisat2_index.py"
