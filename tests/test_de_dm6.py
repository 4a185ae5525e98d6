"""edgeR through the workflow's DE function against a direct edgeR run, on real reads.

GSE49587 (dm6 excerpt): samples 1-2 wild type, 3-4 Smn mutant, aligned and counted by the
real align/quant steps (`dm6_pipeline`). Framed as one study with two groups (mutant =
"in"), `study_de(method="edger")` must give the same logFC, p-value and FDR as edgeR's
standard quasi-likelihood workflow run by ``Rscript`` in a separate process on the same
counts, gene for gene, to 1e-8. Both gene filters are checked: edgeR's ``filterByExpr``
and the ``detected`` filter the workflow uses on single cells (restated in R).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dm6_pipeline import DM6, RUNS, dm6_pipeline

from scatlas.de import study_de
from scatlas.reads.quant import read_featurecounts

pytestmark = [pytest.mark.tools]

DIRECT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(edgeR))
counts <- as.matrix(read.delim(args[1], row.names = 1, check.names = FALSE))
group <- factor(c("wt", "wt", "mut", "mut"), levels = c("wt", "mut"))
y <- DGEList(counts = counts, group = group)
if (args[3] == "filterByExpr") {
  keep <- filterByExpr(y)
} else {  # detected: a count in >= max(2, ceiling(0.1 n)) samples of either group
  need <- function(g) max(2, ceiling(0.1 * sum(group == g)))
  keep <- rowSums(counts[, group == "wt"] > 0) >= need("wt") |
          rowSums(counts[, group == "mut"] > 0) >= need("mut")
}
y <- y[keep, , keep.lib.sizes = FALSE]
y <- calcNormFactors(y)
design <- model.matrix(~group)
y <- estimateDisp(y, design)
fit <- glmQLFit(y, design)
tt <- topTags(glmQLFTest(fit, coef = 2), n = Inf, sort.by = "none")$table
out <- data.frame(gene = rownames(tt), logFC = sprintf("%.17g", tt$logFC),
                  PValue = sprintf("%.17g", tt$PValue), FDR = sprintf("%.17g", tt$FDR))
write.table(out, args[2], sep = "\t", quote = FALSE, row.names = FALSE)
"""


@pytest.fixture(scope="session")
def dm6(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DM6:
    return dm6_pipeline(shared_data, tmp_path_factory)


def _direct_edger(counts: pd.DataFrame, work: Path, gene_filter: str) -> pd.DataFrame:
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not on PATH")
    script = work / "direct_edger.R"
    script.write_text(DIRECT)
    counts.to_csv(work / "counts.tsv", sep="\t")
    out = work / f"direct_{gene_filter}.tsv"
    subprocess.run(
        ["Rscript", str(script), str(work / "counts.tsv"), str(out), gene_filter],
        check=True,
        capture_output=True,
    )
    return pd.read_csv(out, sep="\t", dtype={"gene": str}).set_index("gene")


@pytest.mark.parametrize("gene_filter", ["filterByExpr", "detected"])
def test_workflow_edger_equals_direct_edger(dm6: DM6, tmp_path: Path, gene_filter: str) -> None:
    counts, _ = read_featurecounts(dm6.counts_tsv)
    counts = counts[RUNS]  # sample1..4: wild type, wild type, mutant, mutant
    direct = _direct_edger(counts, tmp_path, gene_filter)
    res = study_de(
        counts.T.to_numpy(),
        np.array([False, False, True, True]),
        "edger",
        genes=counts.index.tolist(),
        samples=RUNS,
        gene_filter=gene_filter,
    )
    assert res.method == "edger" and res.unit == "cells"  # one unit per sample: no pooling
    assert (res.n_units_in, res.n_units_out) == (2, 2)
    ours = res.table.set_index("gene")
    assert len(direct) > 20  # the 167-gene excerpt: enough genes pass to compare
    assert sorted(ours.index) == sorted(direct.index)
    ours = ours.loc[direct.index]
    diffs = {
        "logfc": np.max(np.abs(ours["logfc"] - direct["logFC"])),
        "pvalue": np.max(np.abs(ours["pvalue"] - direct["PValue"])),
        "padj": np.max(np.abs(ours["padj"] - direct["FDR"])),
    }
    print(f"dm6 edgeR ({gene_filter}, {len(direct)} genes) max |diff|: {diffs}")
    assert all(d <= 1e-8 for d in diffs.values()), diffs
    # a real effect exists between the genotypes (the comparison is not all-null)
    assert direct["PValue"].min() < 0.01
