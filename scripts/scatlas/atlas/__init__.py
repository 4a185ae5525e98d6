"""The atlas: per-study expression and cell types assembled into one QC'd AnnData with a study-disjoint split."""

#: how `scatlas build-reference` reads labels (see scatlas.atlas.labelled)
LABEL_KINDS = ("auto", "cl_id", "cl_name", "free_text", "plain")
