"""GO enrichment of a term's up-regulated genes with ``limma::goana``, offline.

Gene symbols (or Ensembl ids) are mapped to Entrez ids with the organism's Bioconductor
annotation package (Debian: r-bioc-org.hs.eg.db; GO terms from r-bioc-go.db); the universe
is every gene the term was tested on. An organism without an installed annotation package
fails with `RUnavailable` naming the package (Debian does not package org.Mm.eg.db: install
it from Bioconductor, ``BiocManager::install("org.Mm.eg.db")``, to enable mouse).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scatlas.de.rbridge import RUnavailable, r_package, robjects
from scatlas.de.rcall import RError

GO_COLUMNS = ["go_id", "term", "ontology", "n_genes", "n_up", "pvalue", "padj"]
ANNOTATION = {
    "Homo sapiens": ("org.Hs.eg.db", "Hs"),
    "Mus musculus": ("org.Mm.eg.db", "Mm"),
}

_GOANA = """
function(up, universe, pkg, species) {
  db <- get(pkg, envir = asNamespace(pkg))
  keytype <- if (all(grepl("^ENS[A-Z]*G[0-9]+", universe))) "ENSEMBL" else "SYMBOL"
  ids <- function(keys) {
    m <- suppressMessages(AnnotationDbi::mapIds(db, keys = keys, keytype = keytype,
                                                column = "ENTREZID", multiVals = "first"))
    unique(as.character(m[!is.na(m)]))
  }
  uni <- ids(universe)
  de <- ids(up)
  if (length(de) == 0) stop("none of the up-regulated genes maps to an Entrez id")
  res <- limma::goana(de, universe = uni, species = species)
  res <- res[res$DE > 0, , drop = FALSE]
  res$padj <- stats::p.adjust(res$P.DE, method = "BH")
  res <- res[order(res$P.DE), , drop = FALSE]
  data.frame(go_id = rownames(res), term = res$Term, ontology = res$Ont, n_genes = res$N,
             n_up = res$DE, pvalue = res$P.DE, padj = res$padj, stringsAsFactors = FALSE)
}
"""


def goana_up(up: Sequence[str], universe: Sequence[str], organism: str) -> pd.DataFrame:
    """GO terms enriched in ``up`` against ``universe`` (symbols or Ensembl gene ids), with
    BH-adjusted p over the GO terms that hold at least one up gene."""
    if organism not in ANNOTATION:
        raise RUnavailable(
            f"GO enrichment: no annotation package known for organism {organism!r} "
            f"(known: {', '.join(ANNOTATION)})"
        )
    pkg, species = ANNOTATION[organism]
    r_package("limma")
    ro = robjects()
    installed = ro.r("function(p) suppressMessages(requireNamespace(p, quietly = TRUE))")
    for name in ("GO.db", pkg):
        if not installed(name)[0]:
            raise RUnavailable(
                f"GO enrichment for {organism} needs the R package {name}, which is not "
                "installed"
                + (
                    " (Debian does not package it; BiocManager::install('org.Mm.eg.db'))"
                    if name == "org.Mm.eg.db"
                    else f" (Debian: r-bioc-{name.lower()})"
                )
            )
    fn = ro.r(_GOANA)
    from rpy2.rinterface_lib.embedded import RRuntimeError

    try:
        res = fn(
            ro.StrVector([str(g) for g in up]),
            ro.StrVector([str(g) for g in universe]),
            pkg,
            species,
        )
    except RRuntimeError as exc:
        raise RError(f"R error in goana: {str(exc).strip()}") from exc
    out = {}
    for name in GO_COLUMNS:
        col = res.rx2(name)
        out[name] = (
            np.array(list(col), dtype=object).astype(str)
            if name in ("go_id", "term", "ontology")
            else np.asarray(col, dtype=np.float64)
        )
    return pd.DataFrame(out, columns=GO_COLUMNS)
