"""The config schema: both shipped configs validate, defaults are filled, mistakes are caught."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = "scripts/scatlas/data/schemas/config.schema.yaml"


def _load(repo_root, name):
    return yaml.safe_load((repo_root / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_shipped_configs_validate(repo_root, name):
    config = _load(repo_root, name)
    validate(config, str(repo_root / SCHEMA))
    assert config["align"]["min_alignment_rate"] == 0.4


def test_defaults_filled_from_empty(repo_root):
    config: dict = {}
    validate(config, str(repo_root / SCHEMA))
    assert config["services"]["ncbi_requests_per_s"] is None
    assert config["services"]["eutils"].startswith("https://eutils.ncbi.nlm.nih.gov")
    assert config["train"]["dense"]["hidden"] == [1136, 100]
    assert config["atlas"]["min_cells_per_type"] == 75
    assert config["publish"]["version"] is None
    assert config["discover"]["organisms"] == ["Homo sapiens", "Mus musculus"]


@pytest.mark.parametrize(
    "path, value",
    [
        (("services", "ncbi_requests_per_s"), 50),  # above NCBI's limit with a key
        (("align", "min_alignment_rate"), 1.5),
        (("discover", "studies"), ["GSE12; rm -rf /"]),  # accessions are validated
        (("publish", "version"), "../escape"),
        (("models",), ["nonexistent"]),
    ],
)
def test_bad_values_rejected(repo_root, path, value):
    config = copy.deepcopy(_load(repo_root, "demo.yaml"))
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(WorkflowError):
        validate(config, str(repo_root / SCHEMA))


def test_unknown_key_rejected(repo_root):
    config = _load(repo_root, "demo.yaml")
    config["align"]["threds"] = 4  # a typo must not pass silently
    with pytest.raises(WorkflowError):
        validate(config, str(repo_root / SCHEMA))


def test_reference_needs_path_or_url(repo_root):
    config = _load(repo_root, "demo.yaml")
    config["reference"]["Homo sapiens"]["fasta"] = {"path": "a.fa", "url": "https://x/a.fa"}
    with pytest.raises(WorkflowError):
        validate(config, str(repo_root / SCHEMA))


def test_old_query_section_is_named_in_the_error(tmp_path, repo_root):
    """A config written before the rename (query: -> discover:) gets a message saying so."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    config = _load(repo_root, "demo.yaml")
    config["query"] = config.pop("discover")
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(config))
    with SnakemakeApi() as api, pytest.raises(Exception, match="now called 'discover:'"):
        api.workflow(
            snakefile=repo_root / "Snakefile",
            workdir=tmp_path,
            config_settings=ConfigSettings(configfiles=[tmp_path / "old.yaml"]),
            resource_settings=ResourceSettings(cores=1),
        ).dag()


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda c: c["align"].update(threds=4),
            "config align: unknown key 'threds' (did you mean 'threads'?)",
        ),
        (lambda c: c.update(alignn={}), "unknown key 'alignn' (did you mean 'align'?)"),
        (
            lambda c: c.setdefault("barcoded", {}).update(cell_calling="kne"),
            "'kne' is not one of auto, knee, whitelist",
        ),
    ],
)
def test_a_config_mistake_is_told_in_a_few_lines(tmp_path, repo_root, edit, words):
    """Snakemake's validation prints the whole schema and config after the message (890
    lines); the workflow names the key, the path and the allowed values instead."""
    import subprocess
    import sys

    config = _load(repo_root, "demo.yaml")
    edit(config)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--snakefile",
            str(repo_root / "Snakefile"),
            "--configfile",
            str(tmp_path / "bad.yaml"),
            "--directory",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=300,
    )
    out = (run.stdout + run.stderr).strip().splitlines()
    assert run.returncode != 0
    assert len(out) < 10, "\n".join(out)
    assert any(words in line for line in out), "\n".join(out)
