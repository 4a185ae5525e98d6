"""A labelled file of one's own as a study of the workflow's atlas (config ``local_studies``).

Each entry of ``local_studies`` (``name``, ``path``, ``labels`` and optionally
``label_kind``, ``layer``, ``normalised``) becomes ``results/studies/local-{name}/``
``expression.h5ad`` and ``cell_types.tsv``, which the atlas takes next to (or instead of) the
discovered studies. Labels must name Cell Ontology terms (ids, names or free text the mapper
maps): the workflow's atlas, evaluation and DE are ontology-aware; plain labels are for
``scatlas build-reference``. Gene symbols are translated to the atlas genome's stable ids
(``genes.tsv``) when the file does not use them, so that the study merges with the others.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scatlas.atlas.labelled import (
    LabelledInput,
    check_stated_normalisation,
    label_types,
    read_labelled,
)
from scatlas.errors import InputError
from scatlas.fileio import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local-"
NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _to_gene_ids(adata: ad.AnnData, genes_tsv: Path | None, source: str) -> ad.AnnData:
    """``adata`` indexed by the genome's stable ids (symbols translated; unmatched dropped)."""
    if genes_tsv is None:
        return adata
    table = pd.read_csv(genes_tsv, sep="\t", dtype=str, keep_default_na=False)
    ids = set(table["gene_id"])
    names = adata.var_names.astype(str)
    if np.mean([n in ids for n in names]) >= 0.5:
        return adata[:, [n in ids for n in names]].copy()
    symbols = table.loc[table["gene_symbol"] != ""].drop_duplicates("gene_symbol", keep=False)
    by_symbol = dict(zip(symbols["gene_symbol"], symbols["gene_id"], strict=True))
    mapped = np.array([by_symbol.get(n, "") for n in names], dtype=object)
    keep = (mapped != "") & ~pd.Series(mapped).duplicated().to_numpy()
    if not keep.any():
        raise InputError(
            "none of the file's genes is a stable id or a symbol of the atlas genome",
            path=source,
            field="var_names",
        )
    log.info(
        "%s: %d of %d gene symbols translated to stable ids", source, int(keep.sum()), len(names)
    )
    out = adata[:, keep].copy()
    out.var["gene_symbol"] = names[keep]
    out.var_names = mapped[keep].astype(str)
    return out


def local_study(
    entry: dict,
    out_expression: Path,
    out_cell_types: Path,
    *,
    ontology,
    genes_tsv: Path | None = None,
) -> None:
    """Write one local study's expression and cell types (atomically)."""
    name = str(entry["name"])
    if not NAME.match(name):
        raise InputError("a local study's name may hold letters, digits and _", field="name")
    study = LOCAL_PREFIX + name
    spec = LabelledInput(
        Path(entry["path"]), str(entry["labels"]), layer=entry.get("layer", "auto")
    )
    adata = read_labelled([spec])
    cl_id, cl_label, kind = label_types(
        adata.obs["label"].to_numpy(dtype=object), entry.get("label_kind", "auto"), ontology
    )
    if kind == "plain":
        raise InputError(
            "the labels name no Cell Ontology term; the workflow's atlas needs ontology labels "
            "(ids, names or free text). Build a reference from plain labels with "
            "scatlas build-reference",
            path=str(spec.path),
            field=spec.label_column,
        )
    normalised = bool(entry.get("normalised", False))
    check_stated_normalisation(adata.X, normalised, path=str(spec.path))
    adata = _to_gene_ids(adata, genes_tsv, str(spec.path))
    obs = pd.DataFrame(
        {"sample": study, "run": "", "source_text": adata.obs["label"].astype(str).to_numpy()},
        index=adata.obs_names.astype(str),
    )
    out = ad.AnnData(sp.csr_matrix(adata.X, dtype=np.float32), obs=obs, var=adata.var.copy())
    out.uns["scatlas"] = {
        "study": study,
        "status": "ok",
        "normalised": normalised,
        "source": str(spec.path),
    }
    with atomic_path(out_expression, ".h5ad") as tmp:
        out.write_h5ad(tmp)
    types = pd.DataFrame(
        {
            "cl_id": cl_id,
            "cl_label": cl_label,
            "evidence": [f"label {t!r} ({kind})" for t in adata.obs["label"]],
            "confidence": np.where(cl_id != "", 1.0, 0.0),
        },
        index=pd.Index(adata.obs_names.astype(str), name="cell"),
    )
    atomic_write_text(out_cell_types, types.to_csv(sep="\t"))
    log.info(
        "%s: %d cells, %d genes, %d types (%s labels)",
        study,
        out.n_obs,
        out.n_vars,
        len(set(cl_id) - {""}),
        kind,
    )
