"""The scatlas command line: demo world generation and errors."""

from __future__ import annotations

import json

import pytest

from scatlas.cli import build_parser, main


def test_demo_world_command(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["demo-world", str(out), "--seed", "3", "--reads-per-cell", "40"]) == 0
    world = json.loads((out / "world.json").read_text())
    assert world["seed"] == 3
    assert (out / "reference" / "genome.fa").is_file()
    assert (out / "heldout" / "query.h5ad").is_file()
    assert '"good_cells"' in capsys.readouterr().out


def test_demo_world_refuses_a_folder_that_is_not_a_world(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo-world", str(tmp_path), "--reads-per-cell", "40"]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_subcommands_listed():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    args = parser.parse_args(["mirror", "serve", "some/world", "--port", "9999"])
    assert args.port == 9999 and args.dir == "some/world"


def test_demo_report_names_release_accuracy_and_failures(tmp_path):
    from scatlas.demo.run import DemoResult

    outputs = {
        "release": {"path": "published/v1", "version": "v1", "current": "published/current"},
        "accuracy": {"annotated": "results/demo/q.h5ad", "accuracy": 0.95, "n_scored": 60},
        "catalog": {"failed_studies": [{"study": "GSE9", "reason": "GSE9: md5 mismatch for x"}]},
    }
    text = DemoResult(ok=True, root=tmp_path, outputs=outputs).report(2.5)
    assert "published/v1 (version v1)" in text
    assert "0.950 over 60 cells" in text
    assert "failed study GSE9: md5 mismatch for x" in text
    assert "FAILED" not in text
    assert "FAILED" in DemoResult(ok=False, root=tmp_path).report(1.0)


def test_demo_report_says_when_the_gate_refused_a_release(tmp_path):
    from scatlas.demo.run import DemoResult

    release = {
        "published": False,
        "candidate_version": "v2",
        "reason": "accuracy 0.80 < 0.95 - 0.05",
        "path": "published/v1",
        "version": "v1",
        "current": "published/current",
    }
    text = DemoResult(ok=True, root=tmp_path, outputs={"release": release}).report(1.0)
    assert "release v2 NOT published: accuracy 0.80 < 0.95 - 0.05" in text
    assert "published/v1 (version v1)" in text


def test_every_command_is_described_and_every_option_explained():
    import argparse

    from scatlas.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        if not parser.description:
            missing.append(f"{name}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}: no help")

    walk(build_parser(), "scatlas")
    assert not missing, missing
