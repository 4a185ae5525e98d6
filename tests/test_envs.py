"""Conda environments agree with what the tests run, and give each rule what it imports.

Snakemake appends the host Python's sys.path to every rule script's, so a module missing
from a rule's env is silently taken from the host: these tests read each script's imports
(through the scatlas modules it reaches) and check its env provides them instead.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from rule_imports import REPO, rule_envs_and_scripts, third_party_imports

sys.path.insert(0, str(REPO / "envs"))
import generate  # noqa: E402

# provided by Snakemake's script preamble (it unpickles the `snakemake` object)
PREAMBLE = {"snakemake"}


def _env(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def _pip_packages(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return [re.split(r"==", p)[0] for p in dep["pip"]]
    return []


def _closure(distributions: list[str]) -> set[str]:
    """The distributions and, transitively, everything they require (as installed here)."""
    seen: set[str] = set()
    todo = [generate.normalise(d) for d in distributions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            todo.append(generate.normalise(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
    return seen


def test_committed_envs_are_generated_from_pyproject():
    assert generate.main(["--check"]) == 0, "envs/*.yaml are stale: run `make envs`"


def test_env_pins_equal_pyproject_pins():
    pins = generate.pyproject_pins()
    for path in sorted((REPO / "envs").glob("*.yaml")):
        for dep in _env(str(path.relative_to(REPO)))["dependencies"]:
            if isinstance(dep, dict):
                for req in dep["pip"]:
                    assert pins[generate.normalise(req.split("==")[0])] == req, path.name


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian machine")
def test_conda_tool_pins_equal_the_debian_packages_tested():
    for tool, (version, package) in generate.CONDA_TOOLS.items():
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{package} is not installed (make setup installs it)"
        upstream = re.sub(r"^\d+:", "", proc.stdout).split("-")[0].split("+")[0]
        assert upstream == version or upstream.startswith(version + "."), (tool, upstream)


def test_every_script_rule_has_an_env():
    rules = rule_envs_and_scripts()
    assert len(rules) >= 15
    for rule, (env, script) in rules.items():
        assert (REPO / env).is_file(), f"rule {rule}: env {env} is missing"
        assert (REPO / script).is_file(), f"rule {rule}: script {script} is missing"


@pytest.mark.parametrize("rule", sorted(rule_envs_and_scripts()))
def test_rule_env_provides_every_import(rule):
    env_path, script = rule_envs_and_scripts()[rule]
    provided = _closure(_pip_packages(_env(env_path)))
    owners = md.packages_distributions()
    missing = {}
    for module, where in third_party_imports(REPO / script).items():
        if module in PREAMBLE:
            continue
        dists = {generate.normalise(d) for d in owners.get(module, [module])}
        if not dists & provided:
            missing[module] = sorted(where)
    assert not missing, f"rule {rule} ({env_path}) lacks: {missing}"


def test_import_walk_sees_lazy_and_optional_imports():
    """The walk must see imports inside functions, and tell optional ones apart."""
    evaluate = REPO / "scripts" / "evaluate_models.py"
    required = third_party_imports(evaluate)
    assert {"torch", "faiss", "sklearn"} <= set(required)
    assert "umap" in third_party_imports(evaluate, optional=True)
    assert "umap" not in required
