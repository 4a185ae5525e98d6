"""edgeR quasi-likelihood test (glmQLFit / glmQLFTest) of "in" against "out" samples.

The steps are edgeR's documented default workflow: DGEList, filterByExpr (optional),
calcNormFactors (TMM), design ~group, estimateDisp, glmQLFit, glmQLFTest on the group
coefficient, topTags (BH). ``logfc`` is edgeR's log2 fold change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scatlas.de.rcall import DGE_PRELUDE, call_r

EDGER_QL = (
    """
function(counts, group, filter) {"""
    + DGE_PRELUDE
    + """  y <- edgeR::estimateDisp(y, design)
  fit <- edgeR::glmQLFit(y, design)
  res <- edgeR::glmQLFTest(fit, coef = 2)
  tt <- edgeR::topTags(res, n = Inf, sort.by = "none")$table
  data.frame(gene = rownames(tt), logfc = tt$logFC, logcpm = tt$logCPM, stat = tt$F,
             pvalue = tt$PValue, padj = tt$FDR, stringsAsFactors = FALSE)
}
"""
)


def edger_ql(
    counts: np.ndarray,
    groups: np.ndarray,
    genes: Sequence[str],
    *,
    filter_genes: bool = True,
) -> pd.DataFrame:
    """edgeR QL F-test on ``counts`` (genes x samples). Columns: gene, logfc (log2),
    logcpm, stat (F), pvalue, padj (BH over the tested genes)."""
    return call_r(EDGER_QL, ("edgeR",), counts, groups, genes, filter=filter_genes)
