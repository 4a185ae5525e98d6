"""The atlas: per-study expression and cell types assembled into one QC'd AnnData with a study-disjoint split."""
