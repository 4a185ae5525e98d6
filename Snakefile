# scatlas: thin entry point so that both `snakemake` at the repository root and the
# workflow catalog's workflow/Snakefile work.


include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
