"""Which Cell Ontology release to load: the pinned snapshot, a file, or a release shipped by
the PyPI package ``cellxgene-ontology-guide`` (CZ CELLxGENE's ontology builds, JSON).

``ontology.obo`` in the config (and ``--ontology`` on the command line) takes any of:

* null / empty: the pinned CL 2022-12-15 snapshot shipped with scatlas (offline);
* ``cellxgene-ontology-guide``: the newest CL release inside that package (2026-03-26 in
  1.11.1), ``cellxgene-ontology-guide:v2025-07-30`` for a named one;
* a path to an OBO file, or to a cellxgene-ontology-guide JSON (``.json``/``.json.zst``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from scatlas.errors import InputError
from scatlas.package_data import snapshot_obo

CELLXGENE = "cellxgene-ontology-guide"
_CL_FILE = re.compile(r"^CL-ontology-(v[\w.-]+)\.json(\.zst|\.gz)?$")


def _package_data() -> Path:
    spec = importlib.util.find_spec("cellxgene_ontology_guide")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the Cell Ontology release {CELLXGENE!r} needs the PyPI package {CELLXGENE} "
            "(pip install 'scatlas[ontology]'); or set ontology.obo to an OBO file",
            path=CELLXGENE,
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def cellxgene_releases() -> dict[str, Path]:
    """CL releases in the installed cellxgene-ontology-guide, version -> file, oldest first."""
    found = {}
    for f in _package_data().iterdir():
        m = _CL_FILE.match(f.name)
        if m:
            found[m.group(1)] = f
    return dict(sorted(found.items()))


def cellxgene_cl(version: str | None = None) -> Path:
    """The JSON of one CL release in cellxgene-ontology-guide (the newest when no version)."""
    releases = cellxgene_releases()
    if not releases:
        raise InputError(f"no CL release in the installed {CELLXGENE}", path=str(_package_data()))
    if version is None:
        return releases[next(reversed(releases))]
    key = version if version.startswith("v") else f"v{version}"
    if key not in releases:
        raise InputError(
            f"no CL release {version!r} in {CELLXGENE}; it has {', '.join(releases)}",
            path=CELLXGENE,
        )
    return releases[key]


def ontology_file(value: str | Path | None) -> Path:
    """The file behind a configured ontology (see the module docstring)."""
    if value is None or str(value).strip() == "":
        return snapshot_obo()
    text = str(value).strip()
    if text == CELLXGENE or text.startswith(CELLXGENE + ":"):
        return cellxgene_cl(text.partition(":")[2] or None)
    return Path(text)
