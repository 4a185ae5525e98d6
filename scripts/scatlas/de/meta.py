"""Combine one term's per-study DE results gene by gene.

* Fisher: X = −2 Σ ln p_i, chi-square with 2k degrees of freedom.
* Weighted Stouffer: z_i = sign(logfc_i) · Φ⁻¹(1 − p_i / 2), weights w_i = √n_i (cells the
  study tested), Z = Σ w_i z_i / √(Σ w_i²), two-sided p. Its BH-adjusted p is
  ``stouffer_fdr``.
* scQuery's conservative rule: ``maxp`` = the largest within-study adjusted p.
* Direction consistency: ``n_agree`` studies share the sign of the median logfc.
* ``conservative``: scQuery's rule with a direction requirement: tested in at least
  ``min_studies`` studies, ``maxp`` < ``fdr`` and every tested study agreeing in direction.
* ``fisher_fdr``: BH over Fisher's p (Fisher ignores direction: reported, not used to call).

A gene is called ``significant`` when it was tested in at least ``min_studies`` studies,
its ``stouffer_fdr`` is below ``fdr`` and it *replicates*: at least ``min_studies`` studies
have padj < ``fdr`` in the combined direction (``n_replicated``). The replication
requirement is what rejects a batch artefact that is strong in one study only (Stouffer
and Fisher alone would call it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

_P_FLOOR = 1e-300


def fisher_combine(p: np.ndarray) -> np.ndarray:
    """Fisher's combined p per row of ``p`` (genes x studies, NaN = not tested)."""
    p = np.clip(np.asarray(p, dtype=np.float64), _P_FLOOR, 1.0)
    k = np.sum(~np.isnan(p), axis=1)
    x = -2.0 * np.nansum(np.log(p), axis=1)
    out = stats.chi2.sf(x, 2 * np.maximum(k, 1))
    return np.where(k > 0, out, np.nan)


def signed_z(p: np.ndarray, logfc: np.ndarray) -> np.ndarray:
    """Two-sided p-values turned into z-scores signed by the direction of change."""
    p = np.clip(np.asarray(p, dtype=np.float64), _P_FLOOR, 1.0)
    return np.sign(logfc) * stats.norm.isf(p / 2.0)


def stouffer_combine(z: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Stouffer Z and its two-sided p per row of ``z`` (NaN = not tested)."""
    z = np.asarray(z, dtype=np.float64)
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), z.shape)
    tested = ~np.isnan(z)
    num = np.sum(np.where(tested, w * np.nan_to_num(z), 0.0), axis=1)
    den = np.sqrt(np.sum(np.where(tested, w**2, 0.0), axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        Z = np.where(den > 0, num / den, np.nan)
    return Z, 2.0 * stats.norm.sf(np.abs(Z))


def agreement(logfc: np.ndarray) -> np.ndarray:
    """Per row: how many studies share the sign of the median logfc (NaN = not tested)."""
    logfc = np.asarray(logfc, dtype=np.float64)
    med = np.sign(np.nanmedian(logfc, axis=1))
    return np.sum(np.sign(logfc) == med[:, None], axis=1)


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def meta_analyse(
    per_study: Mapping[str, pd.DataFrame],
    n_cells: Mapping[str, int],
    *,
    fdr: float = 0.05,
    min_studies: int = 2,
) -> pd.DataFrame:
    """Combine per-study `test_study` tables (keyed by study) into one row per gene."""
    studies = sorted(per_study)
    genes = sorted(set().union(*(set(per_study[s]["gene"]) for s in studies)))
    index = pd.Index(genes, name="gene")
    cols = {
        key: pd.DataFrame({s: per_study[s].set_index("gene")[key].reindex(index) for s in studies})
        for key in ("logfc", "pvalue", "padj", "mean_in", "mean_out")
        if all(key in per_study[s].columns for s in studies)
    }
    logfc, pval, padj = (cols[k].to_numpy(dtype=np.float64) for k in ("logfc", "pvalue", "padj"))
    weights = np.sqrt(np.array([n_cells[s] for s in studies], dtype=np.float64))
    Z, stouffer_p = stouffer_combine(signed_z(pval, logfc), weights)
    n_studies = np.sum(~np.isnan(pval), axis=1)
    direction = np.where(Z < 0, "down", "up")
    combined_sign = np.where(Z < 0, -1.0, 1.0)
    n_replicated = np.sum((padj < fdr) & (np.sign(logfc) == combined_sign[:, None]), axis=1)
    q = bh(stouffer_p)
    out = pd.DataFrame(index=index)
    for s in studies:  # per study: the test's figures and the mean expression in / out
        for key in ("logfc", "pvalue", "padj", "mean_in", "mean_out"):
            if key in cols:
                out[f"{key}__{s}"] = cols[key][s]
    out["stouffer_z"] = Z
    out["stouffer_p"] = stouffer_p
    out["fisher_p"] = fisher_combine(pval)
    out["fisher_fdr"] = bh(out["fisher_p"].to_numpy())
    out["maxp"] = np.nanmax(padj, axis=1)  # every gene was tested in at least one study
    out["stouffer_fdr"] = q
    out["direction"] = direction
    out["n_studies"] = n_studies
    out["n_agree"] = agreement(logfc)
    out["n_replicated"] = n_replicated
    out["significant"] = (n_studies >= min_studies) & (q < fdr) & (n_replicated >= min_studies)
    out["conservative"] = (
        (n_studies >= min_studies) & (out["maxp"] < fdr) & (out["n_agree"] == n_studies)
    )
    return out.reset_index()
