"""A small synthetic atlas for the model/evaluation/publish/query tests.

Four well-separated cell types (each with its own marker genes) in four studies with
study-specific gene effects and library sizes: two training studies, one validation study,
one query study. The query study also holds a novel type and a few unlabelled cells.
Counts are Poisson draws, so X holds raw integer counts as in the real atlas.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

TYPES = {
    "CL:0000236": "B cell",
    "CL:0000084": "T cell",
    "CL:0000576": "monocyte",
    "CL:0000623": "natural killer cell",
}
NOVEL = ("CL:0000235", "macrophage")
STUDIES = {
    "GSE100001": "train",
    "GSE100002": "train",
    "GSE100003": "validation",
    "GSE100004": "query",
}


def gene_ids(n_genes: int) -> list[str]:
    return [f"ENSG{i:011d}" for i in range(1, n_genes + 1)]


def make_atlas(
    *,
    cells_per_type: int = 25,
    n_genes: int = 200,
    seed: int = 0,
    markers: int = 30,
    fold: float = 8.0,
    batch_sd: float = 0.3,
    novel: bool = True,
    n_unlabelled: int = 5,
) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.0, n_genes)
    profiles = {}
    for t_i, cl in enumerate([*TYPES, NOVEL[0]]):
        prof = base.copy()
        prof[t_i * markers : (t_i + 1) * markers] *= fold
        profiles[cl] = prof
    rows, obs = [], []
    for s_i, (study, split) in enumerate(STUDIES.items()):
        gene_effect = rng.lognormal(0.0, batch_sd, n_genes)
        kinds = list(TYPES)
        if split == "query" and novel:
            kinds.append(NOVEL[0])
        plan = [(cl, cells_per_type) for cl in kinds]
        if split == "query":
            plan.append(("", n_unlabelled))
        for cl, n in plan:
            prof = profiles.get(cl, base)
            p = prof * gene_effect
            p = p / p.sum()
            lib = rng.lognormal(np.log(2000), 0.3, n)
            counts = rng.poisson(lib[:, None] * p[None, :])
            rows.append(counts)
            for c in range(n):
                label = TYPES.get(cl, NOVEL[1] if cl == NOVEL[0] else "")
                obs.append(
                    {
                        "study": study,
                        "sample": f"GSM{900000 + s_i * 1000 + len(obs)}",
                        "run": f"SRR{800000 + len(obs)}",
                        "source_text": f"{label or 'unknown'} | study {study} | cell {c}",
                        "cl_id": cl,
                        "cl_label": label,
                        "split": split,
                        "trainable": bool(cl in TYPES),
                    }
                )
    X = sp.csr_matrix(np.vstack(rows).astype(np.float32))
    obs_df = pd.DataFrame(obs)
    obs_df.index = [f"cell{i:05d}" for i in range(len(obs_df))]
    ids = gene_ids(n_genes)
    var = pd.DataFrame(
        {
            "gene_symbol": [f"GENE{i}" for i in range(1, n_genes + 1)],
            "length": rng.integers(500, 5000, n_genes),
        },
        index=ids,
    )
    adata = ad.AnnData(X=X, obs=obs_df, var=var)
    adata.uns["scatlas"] = {"novel_types": [NOVEL[0]] if novel else []}
    return adata


def write_atlas(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_atlas(**kwargs).write_h5ad(path)
    return path


TINY_PARAMS = {
    "hidden": [64, 16],
    "dropout": 0.1,
    "epochs": 12,
    "batch_size": 32,
    "lr": 3e-3,
    "patience": 3,
}


def train_tiny(atlas: Path, out_dir: Path, seed: int = 0, **overrides) -> dict:
    """Train a small dense model on the CPU (one torch thread)."""
    import torch

    from scatlas.models.trainer import train_model

    torch.set_num_threads(1)
    return train_model(
        atlas, "dense", out_dir, params={**TINY_PARAMS, **overrides}, seed=seed, device="cpu"
    )


def write_release_inputs(root: Path) -> tuple[Path, Path]:
    """A DE folder and a tiny OBO file to publish alongside a model."""
    de = root / "de"
    de.mkdir(parents=True, exist_ok=True)
    (de / "summary.tsv").write_text("cl_id\tn_studies\tn_genes_up\nCL:0000236\t2\t30\n")
    (de / "CL_0000236.tsv").write_text(
        "gene_id\tcombined_logfc\tfdr\nENSG00000000001\t2.1\t0.001\n"
    )
    obo = root / "cl.obo"
    obo.write_text(
        "format-version: 1.2\nontology: cl\n\n[Term]\nid: CL:0000000\nname: cell\n\n"
        "[Term]\nid: CL:0000236\nname: B cell\nis_a: CL:0000000 ! cell\n"
    )
    return de, obo


def publish_without_study(
    root: Path,
    study: str,
    *,
    ontology_obo: Path | None = None,
    celltypist: bool = True,
    de_tables: dict[str, str] | None = None,
) -> tuple[Path, ad.AnnData]:
    """A tiny dense model trained and evaluated on the synthetic atlas, published (as
    ``v1``) without ``study``, and that study's cells as new data (``obs['truth']``).
    ``de_tables``: extra files of the release's ``de/`` (name -> text)."""
    from scatlas.evaluate.metrics import evaluate
    from scatlas.release.publish import publish_release
    from scatlas.settings import EvaluateSettings

    atlas = write_atlas(root / "atlas.h5ad")
    train_tiny(atlas, root / "dense")
    settings = EvaluateSettings(novelty_holdout=None, k=5, celltypist=celltypist)
    evaluate(atlas, {"dense": root / "dense"}, root / "evaluation", settings=settings)
    full = ad.read_h5ad(atlas)
    held = (full.obs["study"] == study).to_numpy()
    full[~held].copy().write_h5ad(root / "reference_atlas.h5ad")
    de, obo = write_release_inputs(root)
    for name, text in (de_tables or {}).items():
        (de / name).write_text(text)
    publish_release(
        atlas_h5ad=root / "reference_atlas.h5ad",
        model_dir=root / "dense",
        evaluation_dir=root / "evaluation",
        de_dir=de,
        ontology_obo=ontology_obo or obo,
        publish_dir=root / "published",
        version="v1",
    )
    new = full[held].copy()
    new.obs = new.obs[["sample"]].assign(truth=full.obs.loc[held, "cl_id"].astype(str))
    return root / "published" / "current", new
