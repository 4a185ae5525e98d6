"""The wheel is self-contained: built, installed into a fresh venv outside the checkout,
it annotates mouse cells against the demo's human release (schemas, ontology and ortholog
tables come from the package data, not from the repository)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import anndata as ad
import pytest

pytestmark = [pytest.mark.wheel, pytest.mark.slow]


def _release(demo_run) -> Path:
    release = json.loads((demo_run["work"] / "results" / "publish" / "release.json").read_text())
    folder = Path(release["path"])
    return folder if folder.is_absolute() else demo_run["work"] / folder


def _mouse_query(demo_run, dest: Path) -> int:
    """The demo's held-out human cells with mouse gene symbols only (through the ortholog
    table), no gene ids: matching must go mouse symbol -> human symbol."""
    from scatlas.annotate.orthologs import load_orthologs

    human = ad.read_h5ad(demo_run["work"] / "resources" / "demo-world" / "heldout" / "query.h5ad")
    symbols = human.var.get("gene_symbol", human.var_names)
    to_mouse = load_orthologs().human_to_mouse
    mouse = [to_mouse.get(str(s), "") for s in symbols]
    keep = [i for i, m in enumerate(mouse) if m]
    query = ad.AnnData(human.X[:, keep].copy(), obs=human.obs.copy())
    query.var_names = [mouse[i] for i in keep]
    query.var_names_make_unique()
    query.write_h5ad(dest)
    return len(keep)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory, repo_root):
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(repo_root)],
        check=True,
        cwd=base,
    )
    (wheel,) = dist.glob("scatlas-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        check=True,
    )  # fmt: skip
    # the dependencies (not scatlas) from the test environment: its site-packages is added
    # as a plain path, so its editable-install hook for the checkout is not run
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "scatlas_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir, base


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SCATLAS_ORTHOLOGS")}
    return env


def test_wheel_carries_its_package_data(wheel_venv, repo_root):
    env_dir, base = wheel_venv
    code = (
        "import scatlas, scatlas.package_data as p, scatlas.sheets as s;"
        "print(scatlas.__file__);"
        "print(all(f.is_file() for f in (p.snapshot_obo(), p.orthologs_dir() / "
        "'Ensembl105_Human2Mouse_Genes.csv', p.schema_dir() / 'config.schema.yaml', "
        "*(p.web_static_dir() / n for n in ('index.html', 'app.js', 'style.css')))));"
        "print(s._schema('samples')['type'])"
    )
    out = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", code],
        cwd=base, env=_clean_env(), capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert Path(out[0]).is_relative_to(env_dir), "scatlas was imported from the checkout"
    assert not Path(out[0]).is_relative_to(repo_root)
    assert out[1:] == ["True", "object"]


def test_wheel_query_with_mouse_symbols(wheel_venv, demo_run):
    env_dir, base = wheel_venv
    query = base / "mouse_query.h5ad"
    n_mouse = _mouse_query(demo_run, query)
    out = base / "annotated.h5ad"
    proc = subprocess.run(
        [str(env_dir / "bin" / "scatlas"), "query", "--reference", str(_release(demo_run)),
         "--input", str(query), "--output", str(out), "--min-overlap", "0.15"],
        cwd=base, env=_clean_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mouse->human" in proc.stdout
    annotated = ad.read_h5ad(out)
    assert annotated.n_obs == 66 and "scatlas_cell_type_id" in annotated.obs
    # the demo world's genes are synthetic but for the ~70 named after real human genes:
    # those must all be found through the shipped ortholog table (without it: 0)
    assert n_mouse > 60
    matched = re.search(r"genes matched (\d+)/380", proc.stdout)
    assert matched and int(matched.group(1)) >= 0.9 * n_mouse, proc.stdout
