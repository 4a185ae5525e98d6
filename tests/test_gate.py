import json
import os
import shutil

import pytest
import torch
from synthetic_atlas import train_tiny, write_atlas, write_release_inputs

from scatlas.evaluate.metrics import evaluate
from scatlas.release.gate import QualityGateError, check_gate
from scatlas.release.publish import list_versions, publish_release
from scatlas.release.record import publish_from_workflow
from scatlas.settings import EvaluateSettings, PublishSettings

torch.set_num_threads(1)


def _m(**figures):
    return {"model": "dense", "methods": {"dense": figures}}


def test_check_gate_margin_and_reasons():
    prev = _m(accuracy=0.9, macro_f1=0.8, mafp_at_k=0.7)
    assert check_gate(_m(accuracy=0.9, macro_f1=0.8, mafp_at_k=0.7), None, margin=0.0).passed
    ok = check_gate(_m(accuracy=0.86, macro_f1=0.9, mafp_at_k=0.7), prev, margin=0.05)
    assert ok.passed and "passed" in ok.reason
    bad = check_gate(
        _m(accuracy=0.80, macro_f1=0.79, mafp_at_k=0.6),
        prev,
        margin=0.05,
        previous_version="2026.01.01",
    )
    assert not bad.passed
    assert set(bad.drops) == {"accuracy", "mafp_at_k"}  # macro_f1 fell by 0.01 only
    assert "accuracy 0.8000 < 0.9000" in bad.reason and "2026.01.01" in bad.reason
    lacking = check_gate(_m(accuracy=0.95), prev, margin=0.05)
    assert not lacking.passed and "lacks" in lacking.reason
    # a previous release without these metrics cannot gate
    assert check_gate(_m(accuracy=0.1), _m(other=1.0), margin=0.0).passed


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    atlas = write_atlas(root / "atlas.h5ad")
    train_tiny(atlas, root / "dense", epochs=4)
    evaluate(
        atlas,
        {"dense": root / "dense"},
        root / "evaluation",
        settings=EvaluateSettings(novelty_holdout=None, k=5),
    )
    de, obo = write_release_inputs(root)
    worse = root / "worse"
    shutil.copytree(root / "evaluation", worse)
    figures = json.loads((worse / "dense.json").read_text())
    figures["accuracy"] = figures["accuracy"] - 0.3
    (worse / "dense.json").write_text(json.dumps(figures))
    return root, atlas, de, obo, worse


def test_release_below_previous_is_not_published(inputs, tmp_path):
    root, atlas, de, obo, worse = inputs
    pub = tmp_path / "published"
    common = dict(atlas_h5ad=atlas, model_dir=root / "dense", de_dir=de, ontology_obo=obo)
    publish_release(
        **common,
        evaluation_dir=root / "evaluation",
        publish_dir=pub,
        version="v1",
        settings=PublishSettings(gate={"margin": 0.05}),
    )
    with pytest.raises(QualityGateError, match="accuracy .* margin 0.05.*current stays at v1"):
        publish_release(
            **common,
            evaluation_dir=worse,
            publish_dir=pub,
            version="v2",
            settings=PublishSettings(gate={"margin": 0.05}),
        )
    assert list_versions(pub) == ["v1"] and (pub / "current").resolve().name == "v1"
    assert not list(pub.glob(".v2*"))
    # a wide enough margin lets it through; the manifest records the gate
    rel = publish_release(
        **common,
        evaluation_dir=worse,
        publish_dir=pub,
        version="v3",
        settings=PublishSettings(gate={"margin": 0.5}),
    )
    gate = json.loads((rel / "manifest.json").read_text())["quality_gate"]
    assert gate["passed"] and gate["margin"] == 0.5


def test_workflow_record_says_why(inputs, tmp_path):
    root, atlas, de, obo, worse = inputs
    pub = tmp_path / "published"
    common = dict(atlas=atlas, model_dir=root / "dense", de_dir=de, obo=obo, publish_dir=pub)
    settings = {"version": "a1", "gate": {"margin": 0.05}}
    publish_from_workflow(
        **common, evaluation_dir=root / "evaluation", settings=settings, record=tmp_path / "r1.json"
    )
    first = json.loads((tmp_path / "r1.json").read_text())
    assert first["published"] is True and first["version"] == "a1"
    settings = {"version": "a2", "gate": {"margin": 0.05}}
    kept = publish_from_workflow(
        **common, evaluation_dir=worse, settings=settings, record=tmp_path / "r2.json"
    )
    second = json.loads((tmp_path / "r2.json").read_text())
    assert second["published"] is False and second["candidate_version"] == "a2"
    assert second["version"] == "a1" and kept == pub / "a1"
    assert "quality gate" in second["reason"] and "accuracy" in second["reason"]
    assert not (pub / "a2").exists()


def test_refresh_message_names_the_gate_reason(tmp_path):
    from scatlas.discover.refresh import RELEASE_RECORD, _mtime, publish_outcome

    record = tmp_path / RELEASE_RECORD
    assert publish_outcome(tmp_path, None) == ""  # publish did not run
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"published": True, "version": "v5"}))
    assert publish_outcome(tmp_path, None) == "release v5 published"
    before = _mtime(record)
    assert publish_outcome(tmp_path, before) == ""  # unchanged by this refresh
    refused = {
        "published": False,
        "version": "v5",
        "candidate_version": "v6",
        "reason": "quality gate: evaluation fell below release v5 (accuracy 0.5 < 0.9)",
    }
    record.write_text(json.dumps(refused))
    os.utime(record, ns=(before + 10**9, before + 10**9))
    message = publish_outcome(tmp_path, before)
    assert "v6 NOT published" in message and "accuracy 0.5 < 0.9" in message
    assert "current stays v5" in message
