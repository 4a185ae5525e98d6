"""From reads to expression: the reference genome and HISAT2 index, alignment, gene counts, barcoded runs, author matrices and the per-study AnnData."""
