"""The README of a DE folder: what every file and column holds, with the run's settings.
It travels with the folder into a release (``de/README.md``)."""

from __future__ import annotations

from pathlib import Path

from scatlas.fileio import atomic_write_text

_TEXT = """# Differential expression per cell type

Written by `scatlas.de` ({method}; a gene is **significant** at Stouffer FDR < {fdr} when it
was tested in at least {min_studies} studies and replicates: at least {min_studies} studies
have padj < {fdr} in the combined direction).

## `CL_xxxxxxx.tsv` (the term against the rest of its studies' cells) and `CL_xxxxxxx.siblings.tsv` (against its ontology siblings)

Read from the top: the significant genes come first, **up** then **down**, each by
`stouffer_fdr` and the size of `stouffer_z`; the genes that are not significant follow in
the same order.

| column | what it holds |
|---|---|
| `gene`, `gene_symbol` | the gene (stable id) and its symbol |
| `logfc__{{study}}` | the study's log fold change (unit: `summary.tsv` `logfc_unit`) |
| `pvalue__{{study}}`, `padj__{{study}}` | the study's p-value and its BH-adjusted p (over the genes it tested) |
| `mean_in__{{study}}`, `mean_out__{{study}}` | mean log1p CP10k of the gene in the term's cells / in the cells compared |
| `stouffer_z`, `stouffer_p` | weighted Stouffer combination of the signed per-study z (weights: the square root of each study's test units) and its two-sided p |
| `stouffer_fdr` | BH over `stouffer_p`: the FDR the call uses |
| `fisher_p`, `fisher_fdr` | Fisher's combination (ignores direction: reported, not used to call) |
| `maxp` | the largest per-study `padj` (scQuery's conservative rule) |
| `direction` | `up` or `down` in the term, by the sign of `stouffer_z` |
| `n_studies`, `n_agree`, `n_replicated` | studies that tested the gene; that share the median logfc's sign; with padj < {fdr} in the combined direction |
| `significant` | the call described above |
| `conservative` | tested in >= {min_studies} studies, `maxp` < {fdr} and every study in the same direction |

## `summary.tsv`

One row per term and contrast: `n_studies`, `n_cells`, `n_up`, `n_down` (significant genes),
`n_conservative`, `status` (`tested` / `not tested`), `reason` (why not tested; empty when
tested), `logfc_unit` (what the fold changes measure), `units` (per study: what was
tested, cells or pseudobulk samples, in vs out), `file`, `go` (GO enrichment, when on).

## `studies.tsv`

One row per term, contrast and study with cells of the term: cells in and out, the test
unit and its counts, `status` (`tested`, `skipped`, `failed`, `not tested`) and a `note`.

## `CL_xxxxxxx.go.tsv`

GO enrichment of the term's significant up genes (limma's `goana`), when `de.go` is on.
"""


def write_readme(out_dir: Path, *, method: str, fdr: float, min_studies: int) -> Path:
    """Write ``out_dir/README.md``; returns its path."""
    path = Path(out_dir) / "README.md"
    atomic_write_text(path, _TEXT.format(method=method, fdr=fdr, min_studies=min_studies))
    return path
