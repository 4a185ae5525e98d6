import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from synthetic_atlas import make_atlas, train_tiny, write_atlas

from scatlas.errors import InputError
from scatlas.evaluate.metrics import (
    average_precision_at_k,
    evaluate,
    evaluate_embeddings,
    flexible_relevance,
    highly_variable_genes,
    knn_vote,
)
from scatlas.models.normalize import log1p_cp10k
from scatlas.settings import EvaluateSettings

torch.set_num_threads(1)


class FakeOntology:
    """Distances between three types: A-B are close relatives, C is far from both."""

    table = {frozenset("AB"): 1, frozenset("AC"): 4, frozenset("BC"): 4}

    def distance(self, a, b):
        return 0 if a == b else self.table[frozenset((a, b))]


def test_knn_vote_majority_and_ties():
    labels = np.array([[1, 0, 0, 1], [2, 0, 0, 1], [3, 3, 1, 1], [0, 0, 0, 2]])
    # row 0: tie 0/1 -> 1 ranked first; row 1: tie 0/1 -> 0 ranked nearer; row 2: tie -> 3
    np.testing.assert_array_equal(knn_vote(labels), [1, 0, 3, 0])
    np.testing.assert_array_equal(knn_vote(labels, chunk=1), [1, 0, 3, 0])


def test_average_precision_hand_computed():
    ap = average_precision_at_k(np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0.5, 1, 0, 0]]))
    np.testing.assert_allclose(ap, [(1 + 2 / 3) / 2, 0.0, (0.5 * 0.5 + 1 * 0.75) / 1.5])


def _line_case():
    ref = np.array(
        [[0, 0], [1, 0], [2, 0], [10, 0], [11, 0], [12, 0], [100, 0], [101, 0]], dtype=np.float32
    )
    ref_labels = ["A", "A", "A", "B", "B", "B", "C", "C"]
    query = np.array([[0.4, 0], [5.8, 0], [6.2, 0]], dtype=np.float32)
    return ref, ref_labels, query, ["A", "B", "B"]


def test_evaluate_embeddings_known_answers():
    ref, ref_labels, query, q_labels = _line_case()
    res = evaluate_embeddings(ref, ref_labels, query, q_labels, k=3)
    # neighbours: q1 A A A; q2 A B A (-> A, wrong); q3 B A B (-> B)
    assert list(res["predictions"]) == ["A", "A", "B"]
    assert res["accuracy"] == pytest.approx(2 / 3)
    # A: P=1/2 R=1; B: P=1 R=1/2 -> both F1 = 2/3
    assert res["per_type_f1"] == pytest.approx({"A": 2 / 3, "B": 2 / 3})
    assert res["macro_f1"] == pytest.approx(2 / 3) and res["median_f1"] == pytest.approx(2 / 3)
    assert res["map_at_k"] == pytest.approx((1 + 0.5 + (1 + 2 / 3) / 2) / 3)
    assert res["mafp_at_k"] is None
    assert (res["n_reference"], res["n_query"], res["k"]) == (8, 3, 3)


def test_mafp_with_ontology_hand_computed():
    ref, ref_labels, query, q_labels = _line_case()
    rel = flexible_relevance(["A", "B"], ["A", "B", "C"], FakeOntology())
    np.testing.assert_allclose(rel, [[1, 0.75, 0], [0.75, 1, 0]])  # d_max = 4
    res = evaluate_embeddings(ref, ref_labels, query, q_labels, k=3, ontology=FakeOntology())
    q2 = (0.75 * 0.75 + 1 * 0.875 + 0.75 * 2.5 / 3) / 2.5
    q3 = (1 * 1 + 0.75 * 0.875 + 1 * 2.75 / 3) / 2.75
    assert res["mafp_at_k"] == pytest.approx((1 + q2 + q3) / 3)


def test_highly_variable_genes_prefers_markers():
    adata = make_atlas(cells_per_type=20, markers=10)
    hvg = highly_variable_genes(log1p_cp10k(adata.X), n_top=40)
    assert len(hvg) == 40 and np.all(np.diff(hvg) > 0)
    # the first 50 genes are the five types' markers (10 expected by chance)
    assert np.sum(hvg < 50) >= 30
    assert len(highly_variable_genes(log1p_cp10k(adata.X), n_top=500)) == adata.n_vars


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    atlas = write_atlas(root / "atlas.h5ad")
    train_tiny(atlas, root / "dense")
    return atlas, root


def test_evaluate_end_to_end(setup, tmp_path):
    atlas, root = setup
    out = tmp_path / "evaluation"
    results = evaluate(
        atlas,
        {"dense": root / "dense"},
        out,
        ontology=FakeOntologyCL(),
        settings=EvaluateSettings(novelty_holdout=None, k=5, plot="pca"),
    )
    assert set(results) == {"dense", "pca", "lognorm", "celltypist"}
    peer = results.pop("celltypist")
    assert peer["available"] and peer["accuracy"] > 0.9 and peer["fit_seconds"] > 0
    for name, res in results.items():
        saved = json.loads((out / f"{name}.json").read_text())
        assert saved["accuracy"] == 1.0, name  # well separated types
        assert saved["map_at_k"] > 0.95 and saved["mafp_at_k"] >= saved["map_at_k"]
        # 100 query cells: the 4 training types of the query study (novel and unlabelled excluded)
        assert (saved["n_reference"], saved["n_query"], saved["k"]) == (200, 100, 5)
        assert set(saved["per_type_f1"]) == {"CL:0000084", "CL:0000236", "CL:0000576", "CL:0000623"}
        assert res["accuracy"] == saved["accuracy"]
        # the query study's macrophages are a type never seen in training: they are novel
        assert saved["n_novel"] == 25 and saved["novelty_auroc"] > 0.9, name
    assert results["dense"]["embedding_dim"] == 16
    assert results["pca"]["embedding_dim"] == 100
    assert results["lognorm"]["embedding_dim"] == 200
    table = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert list(table["method"]) == ["dense", "pca", "lognorm", "celltypist"]
    assert pd.isna(table.set_index("method").loc["celltypist", "map_at_k"])  # no retrieval
    timings = pd.read_csv(out / "timings.tsv", sep="\t").set_index("method")
    assert timings.loc["celltypist", "fit_seconds"] > 0
    assert timings.loc["dense", "embed_cells_per_second"] > 0
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3
    assert "natural killer cell" in report and "map_at_k" in report
    # deterministic: a second run writes the same figures
    evaluate(
        atlas,
        {"dense": root / "dense"},
        tmp_path / "again",
        ontology=FakeOntologyCL(),
        settings=EvaluateSettings(novelty_holdout=None, k=5, plot="pca"),
    )
    assert (out / "metrics.tsv").read_bytes() == (tmp_path / "again" / "metrics.tsv").read_bytes()
    timing = {"fit_seconds", "predict_seconds", "embed_cells_per_second"}
    for name in ("dense.json", "pca.json", "lognorm.json", "celltypist.json"):
        a, b = (json.loads((d / name).read_text()) for d in (out, tmp_path / "again"))
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }


class FakeOntologyCL:
    """All four synthetic types one step apart under a common parent."""

    def distance(self, a, b):
        return 0 if a == b else 2


def test_evaluate_without_ontology_and_errors(setup, tmp_path):
    atlas, root = setup
    res = evaluate(
        atlas,
        {},
        tmp_path / "base",
        settings=EvaluateSettings(novelty_holdout=None, k=3, plot="pca", celltypist=False),
    )
    assert set(res) == {"pca", "lognorm"} and res["pca"]["mafp_at_k"] is None
    # a lognorm matrix too large for memory falls back to the HVGs (here: all 200 genes)
    small = evaluate(
        atlas,
        {},
        tmp_path / "small",
        lognorm_max_values=1000,
        settings=EvaluateSettings(novelty_holdout=None, k=3, plot="pca", celltypist=False),
    )
    assert small["lognorm"]["accuracy"] == res["lognorm"]["accuracy"]
    with pytest.raises(InputError, match="clash"):
        evaluate(
            atlas,
            {"pca": root / "dense"},
            tmp_path / "x",
            settings=EvaluateSettings(novelty_holdout=None),
        )
    adata = ad.read_h5ad(atlas)
    no_query = tmp_path / "noquery.h5ad"
    adata[adata.obs["split"] != "query"].copy().write_h5ad(no_query)
    with pytest.raises(InputError, match="query cells"):
        evaluate(no_query, {}, tmp_path / "y", settings=EvaluateSettings(novelty_holdout=None))


def _celllines_atlas(shared_data, path):
    """Real CEL-seq2 counts of lung cancer cell lines (GSE118767), one plate per 'study':
    5-line plate 1 trains, plate 2 validates, the 3-line plate is the held-out query."""
    folder = shared_data / "expression" / "celllines-celseq2"
    plates = {
        "sc_celseq2_5cl_p1": "train",
        "sc_celseq2_5cl_p2": "validation",
        "sc_celseq2": "query",
    }
    parts = []
    for name, split in plates.items():
        counts = pd.read_csv(folder / f"{name}.count.csv.gz", index_col=0)
        meta = pd.read_csv(folder / f"{name}.metadata.csv.gz", index_col=0).loc[counts.columns]
        keep = (meta["demuxlet_cls"] == "SNG").to_numpy()  # singlets with a genotype call
        cells = [f"{name}_{c}" for c in counts.columns[keep]]
        line = meta["cell_line_demuxlet"].to_numpy()[keep]
        parts.append(
            ad.AnnData(
                X=sp.csr_matrix(counts.T.to_numpy()[keep].astype(np.float32)),
                obs=pd.DataFrame(
                    {
                        "study": name,
                        "sample": cells,
                        "cl_id": line,
                        "cl_label": line,
                        "split": split,
                        "trainable": True,
                    },
                    index=cells,
                ),
                var=pd.DataFrame(index=counts.index.astype(str)),
            )
        )
    atlas = ad.concat(parts, join="inner")
    atlas.var["gene_symbol"] = ""
    atlas.write_h5ad(path)
    return path


def test_real_celllines_study_held_out(shared_data, tmp_path):
    atlas = _celllines_atlas(shared_data, tmp_path / "atlas.h5ad")
    train_tiny(atlas, tmp_path / "dense", epochs=8, hidden=[64, 16])
    res = evaluate(
        atlas,
        {"dense": tmp_path / "dense"},
        tmp_path / "evaluation",
        settings=EvaluateSettings(novelty_holdout=None, k=10, plot="pca", celltypist=False),
    )
    # 240 query singlets of 3 lines, against 156 reference singlets of 5 lines
    assert (res["dense"]["n_query"], res["dense"]["n_reference"]) == (240, 156)
    assert set(res["dense"]["per_type_f1"]) == {"H1975", "H2228", "HCC827"}
    for method in ("dense", "pca", "lognorm"):
        assert res[method]["accuracy"] > 0.9, method
        assert res[method]["map_at_k"] > 0.85, method


def test_mafp_with_the_real_cell_ontology(setup, shared_data, tmp_path):
    from scatlas.ontology.load import load_ontology

    atlas, root = setup
    cl = load_ontology(shared_data / "ontology" / "cl-basic_2022-12-15.obo")
    types = ["CL:0000084", "CL:0000236", "CL:0000576", "CL:0000623"]
    rel = flexible_relevance(types, types, cl)
    d_max = max(cl.distance(a, b) for a in types for b in types)
    assert rel[0, 1] == pytest.approx(1 - cl.distance(types[0], types[1]) / d_max)
    np.testing.assert_array_equal(np.diag(rel), 1.0)
    assert rel.min() == 0.0  # the farthest pair
    res = evaluate(
        atlas,
        {"dense": root / "dense"},
        tmp_path / "e",
        ontology=cl,
        settings=EvaluateSettings(novelty_holdout=None, k=10, plot="pca", celltypist=False),
    )
    for r in res.values():
        assert r["map_at_k"] <= r["mafp_at_k"] <= 1.0
