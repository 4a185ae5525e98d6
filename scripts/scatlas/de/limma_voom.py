"""limma-voom: TMM-normalised counts through voom, lmFit, eBayes, on the group coefficient."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scatlas.de.rcall import DGE_PRELUDE, call_r

LIMMA_VOOM = (
    """
function(counts, group, filter) {"""
    + DGE_PRELUDE
    + """  v <- limma::voom(y, design)
  fit <- limma::eBayes(limma::lmFit(v, design))
  tt <- limma::topTable(fit, coef = 2, number = Inf, sort.by = "none")
  data.frame(gene = rownames(tt), logfc = tt$logFC, logcpm = tt$AveExpr, stat = tt$t,
             pvalue = tt$P.Value, padj = tt$adj.P.Val, stringsAsFactors = FALSE)
}
"""
)


def limma_voom(
    counts: np.ndarray,
    groups: np.ndarray,
    genes: Sequence[str],
    *,
    filter_genes: bool = True,
) -> pd.DataFrame:
    """limma-voom moderated t-test on ``counts`` (genes x samples). Columns: gene, logfc
    (log2), logcpm (voom's average log2 CPM), stat (t), pvalue, padj (BH)."""
    return call_r(LIMMA_VOOM, ("edgeR", "limma"), counts, groups, genes, filter=filter_genes)
