"""The release quality gate: a new release must not evaluate worse than the current one.

For the published model, each gated metric (``accuracy``, ``macro_f1``, ``mafp_at_k`` by
default; see ``results/evaluation/{model}.json``) of the candidate is compared with the same
metric in the current release's ``metrics.json``. A drop by more than ``margin`` (absolute,
metrics are in [0, 1]) refuses the release; the reason names every metric that fell.
A first release, or metrics the previous release does not have, pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scatlas.errors import InputError, ScatlasError
from scatlas.release.format import METRICS_FILE

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("accuracy", "macro_f1", "mafp_at_k")


class QualityGateError(ScatlasError):
    """The candidate release evaluates worse than the current one by more than the margin."""

    def __init__(self, result: GateResult):
        super().__init__(result.reason)
        self.result = result


@dataclass
class GateResult:
    passed: bool
    reason: str
    previous_version: str | None = None
    drops: dict[str, dict[str, float]] = field(default_factory=dict)


def _model_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The published model's figures from a ``metrics.json`` payload (``{model, methods}``)."""
    return dict((metrics.get("methods") or {}).get(metrics.get("model"), {}) or {})


def read_release_metrics(release_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` of a published release, or None when there is none."""
    path = Path(release_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"release metrics are not JSON: {exc}", path=str(path)) from exc


def check_gate(
    candidate: dict[str, Any],
    previous: dict[str, Any] | None,
    *,
    margin: float,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    previous_version: str | None = None,
) -> GateResult:
    """Compare ``candidate`` with ``previous`` (both ``metrics.json`` payloads)."""
    if previous is None:
        return GateResult(True, "no previous release: nothing to compare with")
    old = _model_metrics(previous)
    new = _model_metrics(candidate)
    against = f"release {previous_version}" if previous_version else "the previous release"
    compared = [m for m in metrics if isinstance(old.get(m), int | float)]
    if not compared:
        return GateResult(
            True, f"{against} has none of the gated metrics {list(metrics)}", previous_version
        )
    missing = [m for m in compared if not isinstance(new.get(m), int | float)]
    if missing:
        return GateResult(
            False,
            f"the candidate's evaluation of model {candidate.get('model')!r} lacks "
            f"{', '.join(missing)}, which {against} has; not published",
            previous_version,
        )
    drops = {
        m: {"previous": float(old[m]), "candidate": float(new[m])}
        for m in compared
        if float(new[m]) < float(old[m]) - float(margin)
    }
    if drops:
        told = "; ".join(
            f"{m} {v['candidate']:.4f} < {v['previous']:.4f} - margin {margin:g}"
            for m, v in drops.items()
        )
        return GateResult(
            False,
            f"quality gate: evaluation fell below {against} by more than the margin ({told}); "
            f"not published, current stays at {previous_version or 'the previous release'}",
            previous_version,
            drops,
        )
    return GateResult(
        True,
        f"quality gate passed against {against} ({', '.join(compared)} within margin {margin:g})",
        previous_version,
    )
