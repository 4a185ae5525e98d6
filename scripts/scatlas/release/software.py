"""The software a release was built with, recorded in its manifest (``software``): the
Python packages that shape its content, the aligner and counter, and R with the DE
packages. What is missing is recorded as such; recording never stops a release."""

from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
import subprocess
from collections.abc import Sequence

from scatlas.tools import die_with_parent

log = logging.getLogger(__name__)

#: distributions by the name the manifest gives them (first installed one wins)
PACKAGES: dict[str, tuple[str, ...]] = {
    "scatlas": ("scatlas",),
    "torch": ("torch",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss"),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "pandas": ("pandas",),
    "anndata": ("anndata",),
    "scanpy": ("scanpy",),
    "scikit-learn": ("scikit-learn",),
    "celltypist": ("celltypist",),
    "pronto": ("pronto",),
    "snakemake": ("snakemake",),
    "rpy2": ("rpy2",),
}
#: program -> (argument list, pattern of its version in the output)
TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "hisat2": (("hisat2", "--version"), r"version\s+(\S+)"),
    "featureCounts": (("featureCounts", "-v"), r"featureCounts\s+v?(\S+)"),
    "samtools": (("samtools", "--version"), r"samtools\s+(\S+)"),
}
_R_SCRIPT = (
    'cat("R", paste(R.version$major, R.version$minor, sep="."), "\\n"); '
    'for (p in c("edgeR", "limma")) cat(p, tryCatch(as.character(packageVersion(p)), '
    'error=function(e) "not installed"), "\\n")'
)
NOT_FOUND = "not found"


def package_version(names: Sequence[str]) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return NOT_FOUND


def _output(args: Sequence[str]) -> str:
    """stdout and stderr of a program (argument list), or "" when it cannot run."""
    path = shutil.which(args[0])
    if path is None:
        return ""
    try:
        proc = subprocess.run(
            [path, *args[1:]],
            capture_output=True,
            text=True,
            errors="replace",  # featureCounts -v prints raw bytes besides its version
            timeout=60,
            check=False,
            preexec_fn=die_with_parent,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not ask %s its version: %s", args[0], exc)
        return ""
    return proc.stdout + proc.stderr


def tool_version(args: Sequence[str], pattern: str) -> str:
    m = re.search(pattern, _output(args))
    return m.group(1) if m else NOT_FOUND


def r_versions() -> dict[str, str]:
    """R's version and edgeR's and limma's, from one Rscript call."""
    out = {"R": NOT_FOUND, "edgeR": NOT_FOUND, "limma": NOT_FOUND}
    for line in _output(("Rscript", "-e", _R_SCRIPT)).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in out:
            out[parts[0]] = parts[1]
    return out


def software_versions() -> dict[str, str]:
    """Every version the manifest records, by name."""
    found = {name: package_version(dists) for name, dists in PACKAGES.items()}
    found.update({name: tool_version(*spec) for name, spec in TOOLS.items()})
    found.update(r_versions())
    return found
