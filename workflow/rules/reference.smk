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
    log:
        f"{LOGS}/reference/{{genome}}.hisat2_build.log",
    threads: config["align"]["index_threads"]
    cache: "omit-software"
    conda:
        "../../envs/align.yaml"
    script:
        "../../scripts/hisat2_index.py"
