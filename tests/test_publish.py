import json
import os
import shutil
import stat

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_atlas import train_tiny, write_atlas, write_release_inputs

from scatlas.annotate.reference import Reference
from scatlas.errors import InputError
from scatlas.evaluate.metrics import evaluate
from scatlas.fileio import sha256_file
from scatlas.ontology.releases import CELLXGENE, ontology_file
from scatlas.release.format import ReleaseError, validate_version
from scatlas.release.publish import list_versions, publish_release
from scatlas.settings import EvaluateSettings, PublishSettings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pub_inputs")
    atlas = write_atlas(root / "atlas.h5ad")
    train_tiny(atlas, root / "dense", epochs=6)
    evaluate(
        atlas,
        {"dense": root / "dense"},
        root / "evaluation",
        settings=EvaluateSettings(novelty_holdout=None, k=5),
    )
    de, obo = write_release_inputs(root)
    return {
        "atlas_h5ad": atlas,
        "model_dir": root / "dense",
        "evaluation_dir": root / "evaluation",
        "de_dir": de,
        "ontology_obo": obo,
    }


def _publish(inputs, publish_dir, version, **kw):
    settings = PublishSettings(**{"gate": {"margin": None}, **kw})  # the gate: test_gate.py
    return publish_release(**inputs, publish_dir=publish_dir, version=version, settings=settings)


def test_a_release_built_on_a_json_ontology_reads_it_back(inputs, tmp_path):
    """``ontology.obo: cellxgene-ontology-guide``: the release keeps that JSON as its
    ``ontology.obo``, and a query reads it back as the JSON it is."""
    json_cl = ontology_file(CELLXGENE)
    rel = _publish({**inputs, "ontology_obo": json_cl}, tmp_path / "pub", "2026.02")
    assert sha256_file(rel / "ontology.obo") == sha256_file(json_cl)
    onto = Reference.load(rel).ontology()
    assert onto.label("CL:0000236") == "B cell" and len(onto.term_ids()) > 3000
    assert "2022-12-15" in onto.supplemented_from  # completed as when it was built


def test_publish_layout_manifest_and_load(inputs, tmp_path):
    pub = tmp_path / "published"
    rel = _publish(inputs, pub, "2026.01")
    assert rel == pub / "2026.01"
    names = {p.relative_to(rel).as_posix() for p in rel.rglob("*") if p.is_file()}
    assert names == {
        "index.faiss",
        "cells.parquet",
        "encoder.pt",
        "model.json",
        "genes.tsv",
        "novelty.tsv",
        "studies.tsv",
        "ontology.obo",
        "metrics.json",
        "manifest.json",
        "de/summary.tsv",
        "de/CL_0000236.tsv",
    }
    manifest = json.loads((rel / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["version"] == "2026.01"
    assert (manifest["n_cells"], manifest["n_genes"], manifest["embedding_dim"]) == (430, 200, 16)
    assert manifest["index_kind"] == "flat" and manifest["model"] == "dense"
    assert manifest["gene_selection"]["genes"] == "all"
    assert manifest["gene_selection"]["n_genes"] == manifest["n_genes"]
    assert set(manifest["files"]) == names - {"manifest.json"}
    studies = pd.read_csv(rel / "studies.tsv", sep="\t", keep_default_na=False)
    assert list(studies.columns) == ["study", "title", "n_cells", "n_types"]
    assert studies["n_cells"].sum() == 430 and (studies["n_types"] >= 1).all()
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha256_file(rel / name), "bytes": (rel / name).stat().st_size}
    assert manifest["inputs"]["atlas"]["sha256"] == sha256_file(inputs["atlas_h5ad"])
    # the software it was built with: packages, and the tools `make setup` installs
    software = manifest["software"]
    assert software["torch"].startswith("2.") and software["faiss"][0].isdigit()
    for tool in ("hisat2", "featureCounts", "samtools", "R", "edgeR", "limma"):
        assert software[tool][0].isdigit(), (tool, software[tool])
    for p in rel.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o444, p
    cells = pd.read_parquet(rel / "cells.parquet")
    assert list(cells.columns) == [
        "cell_id",
        "study",
        "sample",
        "cl_id",
        "cl_label",
        "split",
        "n_counts",
        "n_genes",
    ]
    assert len(cells) == 430 and (cells["n_counts"] > 0).all()
    genes = pd.read_csv(rel / "genes.tsv", sep="\t")
    assert genes["gene_symbol"].iloc[0] == "GENE1"
    metrics = json.loads((rel / "metrics.json").read_text())
    assert {"dense", "pca", "lognorm"} <= set(metrics["methods"])
    assert os.readlink(pub / "current") == "2026.01"
    assert not [p for p in pub.iterdir() if p.name.startswith(".")]
    ref = Reference.load(pub / "current")
    assert ref.version == "2026.01" and ref.index.ntotal == 430
    with pytest.raises(InputError, match="already exists"):
        _publish(_variant(inputs, tmp_path, "b"), pub, "2026.01")
    assert _publish(inputs, pub, "2026.02") == rel  # the same inputs: that release, no copy


def _variant(inputs, tmp_path, name):
    """The inputs with one more DE table: a different release."""
    de = tmp_path / f"de-{name}"
    shutil.copytree(inputs["de_dir"], de)
    (de / f"{name}.tsv").write_text("gene\tlogfc\n")
    return dict(inputs, de_dir=de)


def _point_current(pub, version):
    os.replace(pub / "current", pub / "old")
    os.symlink(version, pub / "current")
    (pub / "old").unlink()


def test_versions_current_and_pruning(inputs, tmp_path):
    pub = tmp_path / "published"
    for v in ("v1", "v2", "v3"):
        _publish(_variant(inputs, tmp_path, v), pub, v, keep=2)
        assert os.readlink(pub / "current") == v
    assert list_versions(pub) == ["v2", "v3"]
    assert sorted(p.name for p in pub.iterdir()) == ["current", "v2", "v3"]
    # the current release survives pruning even when it is not the newest; as the release
    # that was current before the publish, it stays after it too
    _point_current(pub, "v2")
    _publish(_variant(inputs, tmp_path, "v4"), pub, "v4", keep=1)
    assert list_versions(pub) == ["v2", "v4"] and os.readlink(pub / "current") == "v4"
    _publish(_variant(inputs, tmp_path, "v5"), pub, "v5", keep=1)
    assert list_versions(pub) == ["v4", "v5"]


def test_hnsw_above_flat_max_searches_as_tuned(inputs, tmp_path):
    rel = _publish(
        inputs, tmp_path / "pub", "small", flat_max=100, large_index="hnsw", target_recall=0.99
    )
    manifest = json.loads((rel / "manifest.json").read_text())
    assert manifest["index_kind"] == "hnsw"
    tuned = manifest["index_search"]
    assert tuned["param"] == "efSearch" and tuned["target"] == 0.99 and tuned["k"] == 10
    assert tuned["recall"] >= 0.99 or tuned["reached"] == 512
    assert tuned["value"] >= 2 * tuned["reached"] or tuned["value"] == 512
    assert Reference.load(rel).index.hnsw.efSearch == tuned["value"]  # stored in the file
    assert Reference.load(rel, mmap=True).index.hnsw.efSearch == tuned["value"]
    flat = json.loads(
        (_publish(inputs, tmp_path / "p2", "f").joinpath("manifest.json")).read_text()
    )
    assert flat["index_kind"] == "flat" and flat["index_search"] == {}


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "a/b", "current", "v 1"])
def test_bad_versions_refused(bad):
    with pytest.raises(InputError, match="version"):
        validate_version(bad)


def test_tampered_and_partial_releases_refused(inputs, tmp_path):
    pub = tmp_path / "published"
    rel = _publish(inputs, pub, "r1")
    target = rel / "cells.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.chmod(0o644)
    target.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match="checksum") as err:
        Reference.load(rel)
    assert "cells.parquet" in str(err.value)

    rel2 = _publish(inputs, pub, "r2")
    (rel2 / "de" / "summary.tsv").unlink()
    with pytest.raises(ReleaseError, match="missing") as err:
        Reference.load(pub / "current")
    assert "summary.tsv" in str(err.value)

    rel3 = _publish(inputs, pub, "r3")
    enc = rel3 / "encoder.pt"
    enc.chmod(0o644)
    with open(enc, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ReleaseError, match="bytes"):
        Reference.load(rel3)
    with pytest.raises(ReleaseError, match="manifest.json is missing"):
        Reference.load(tmp_path)


def _model_with(inputs, tmp_path, **fields):
    model = tmp_path / "model"
    shutil.copytree(inputs["model_dir"], model)
    info = json.loads((model / "model.json").read_text())
    info.update(fields)
    (model / "model.json").write_text(json.dumps(info))
    return {**inputs, "model_dir": model}


def test_cosine_model_indexed_as_unit_vectors(inputs, tmp_path):
    cosine = _model_with(inputs, tmp_path, metric="cosine")
    rel = _publish(cosine, tmp_path / "pub", "c1", index="ivf")
    manifest = json.loads((rel / "manifest.json").read_text())
    assert manifest["metric"] == "cosine" and manifest["index_kind"] == "ivf"
    ref = Reference.load(rel)
    assert ref.metric == "cosine"
    new = ad.read_h5ad(inputs["atlas_h5ad"])[:20].copy()
    out = ref.annotate(new, k=5)
    np.testing.assert_allclose(np.linalg.norm(out.obsm["X_scatlas"], axis=1), 1.0, rtol=1e-5)
    # distances between unit vectors: d^2 = 2 - 2 cos, so at most 2
    assert (out.obs["scatlas_min_dist"] <= 2.0 + 1e-5).all()


def test_hamming_model_distances_are_bit_counts(inputs, tmp_path):
    hamming = _model_with(inputs, tmp_path, metric="hamming")
    rel = _publish(hamming, tmp_path / "pub", "h1")
    assert json.loads((rel / "manifest.json").read_text())["metric"] == "hamming"
    ref = Reference.load(rel)
    out = ref.annotate(ad.read_h5ad(inputs["atlas_h5ad"])[:20].copy(), k=3)
    emb = out.obsm["X_scatlas"]
    ref_emb = ref.index.reconstruct_n(0, ref.index.ntotal)
    squared = ((emb[:, None, :] - ref_emb[None]) ** 2).sum(-1).min(axis=1)
    # reported distance = squared L2, which is the Hamming distance for 0/1 codes
    np.testing.assert_allclose(out.obs["scatlas_min_dist"], np.rint(squared), atol=1e-3)


def test_unknown_metric_refused(inputs, tmp_path):
    odd = _model_with(inputs, tmp_path, metric="manhattan")
    with pytest.raises(InputError, match="unknown embedding metric") as err:
        _publish(odd, tmp_path / "pub", "m1")
    assert err.value.field == "metric"
    assert not (tmp_path / "pub" / "m1").exists()


def test_annotating_loads_no_training_code(inputs, tmp_path):
    """Loading a release to annotate cells imports neither the trainer nor the publisher:
    the release contract (scatlas.release.format) is all annotation needs."""
    import subprocess
    import sys

    release = _publish(inputs, tmp_path / "pub", "2026.02")
    code = (
        "import sys; from scatlas.annotate.reference import Reference;"
        f"Reference.load({str(release)!r});"
        "print(sorted(m for m in sys.modules if m.startswith('scatlas.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(out.stdout.strip().splitlines()[-1]))
    assert "scatlas.release.format" in loaded and "scatlas.models.dense" in loaded
    assert not loaded & {"scatlas.models.trainer", "scatlas.release.publish", "scatlas.evaluate"}


def test_resumed_publish_completes_the_swap_and_makes_no_copy(inputs, tmp_path):
    """A publish killed after its release folder appeared, before 'current' moved to it, is
    resumed by publishing again: that release becomes current, no second copy is made, and
    the release that was current before is not pruned."""
    pub = tmp_path / "published"
    _publish(inputs, pub, "v1", keep=1)
    other = _variant(inputs, tmp_path, "b")
    second = _publish(other, pub, "v2", keep=5)
    _point_current(pub, "v1")  # as if killed between the rename and the swap
    again = _publish(other, pub, "v3", keep=1)
    assert again == second and (pub / "current").resolve().name == "v2"
    assert list_versions(pub) == ["v1", "v2"]  # keep=1, but v1 was current before: spared
    # killed after the swap: nothing to do but prune (v1 is no longer the current before)
    assert _publish(other, pub, "v4", keep=1) == second
    assert list_versions(pub) == ["v2"]
    manifest = json.loads((second / "manifest.json").read_text())
    assert len(manifest["inputs_sha256"]) == 64


def _writable(rel):
    for p in [rel, *rel.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_edited_manifest_unlisted_and_delisted_files_refused(inputs, tmp_path):
    """Integrity covers the release as a whole: an edited manifest, a file added beside the
    listed ones, and a file removed from the listing (still present) are all refused."""
    pub = tmp_path / "published"
    rel = _publish(inputs, pub, "r1")
    _writable(rel)
    manifest = json.loads((rel / "manifest.json").read_text())
    (rel / "manifest.json").write_text(json.dumps({**manifest, "version": "evil"}))
    with pytest.raises(ReleaseError, match="says version 'evil' but the release folder is 'r1'"):
        Reference.load(rel)
    (rel / "manifest.json").write_text(json.dumps(manifest))
    Reference.load(rel)  # restored: fine
    (rel / "de" / "planted.tsv").write_text("x\n")
    with pytest.raises(ReleaseError, match="does not list .*de/planted.tsv"):
        Reference.load(rel)
    (rel / "de" / "planted.tsv").unlink()
    files = dict(manifest["files"])
    del files["de/summary.tsv"]
    (rel / "manifest.json").write_text(json.dumps({**manifest, "files": files}))
    with pytest.raises(ReleaseError, match="does not list .*de/summary.tsv"):
        Reference.load(rel)


def test_pinned_and_signed_releases(inputs, tmp_path, capsys):
    """A release is pinned by its manifest's sha256 and signed with Ed25519; a wrong pin, a
    missing or bad signature, and a manifest altered after signing are refused."""
    from scatlas.cli import main
    from scatlas.release.signing import manifest_sha256

    pub = tmp_path / "published"
    rel = _publish(inputs, pub, "r1")
    key, public = tmp_path / "release.key", tmp_path / "release.pub"
    assert main(["release", "keygen", str(key), str(public)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pin = manifest_sha256(rel)
    assert Reference.load(pub / "current", expect_sha256=pin).version == "r1"
    with pytest.raises(ReleaseError, match="not the pinned"):
        Reference.load(rel, expect_sha256="0" * 64)
    with pytest.raises(ReleaseError, match="not signed"):
        Reference.load(rel, public_key=public)
    assert main(["release", "sign", str(rel), "--key", str(key)]) == 0
    assert Reference.load(rel, public_key=public, expect_sha256=pin).version == "r1"
    verify = ["release", "verify", str(pub / "current"), "--public-key", str(public)]
    assert main([*verify, "--expect-sha256", pin]) == 0
    assert "verified (every file, the pin, the signature)" in capsys.readouterr().out
    other_key, other_public = tmp_path / "other.key", tmp_path / "other.pub"
    main(["release", "keygen", str(other_key), str(other_public)])
    with pytest.raises(ReleaseError, match="bad signature"):
        Reference.load(rel, public_key=other_public)
    # the manifest edited after signing (consistently with a swapped file): refused
    _writable(rel)
    manifest = json.loads((rel / "manifest.json").read_text())
    manifest["novelty_quantile"] = 0.5
    (rel / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match="bad signature"):
        Reference.load(rel, public_key=public)
    assert main(["release", "verify", str(rel), "--public-key", str(public)]) == 2


def test_software_not_installed_is_recorded_as_such(monkeypatch):
    from scatlas.release import software

    monkeypatch.setenv("PATH", "/nonexistent")
    assert software.tool_version(("hisat2", "--version"), r"version\s+(\S+)") == "not found"
    assert software.r_versions() == {"R": "not found", "edgeR": "not found", "limma": "not found"}
    assert software.package_version(("no-such-distribution",)) == "not found"
