"""Load a trained model safely (``weights_only=True``) and embed normalised expression."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from scatlas.errors import InputError
from scatlas.models import build_model
from scatlas.models.base import EmbeddingModel
from scatlas.models.normalize import genes_sha256
from scatlas.models.sparse_input import SparseRows

ModelSource = str | os.PathLike | tuple[str | os.PathLike, str | os.PathLike]


def read_model_json(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and check ``model.json``: required fields, and the gene list matches its hash."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read model description: {exc}", path=str(path)) from exc
    for key in (
        "model",
        "architecture",
        "genes",
        "genes_sha256",
        "normalisation",
        "classes",
        "embedding_dim",
    ):
        if key not in info:
            raise InputError("model description lacks a field", path=str(path), field=key)
    if genes_sha256(info["genes"]) != info["genes_sha256"]:
        raise InputError(
            "gene list does not match its sha256", path=str(path), field="genes_sha256"
        )
    if len(info["genes"]) != info["architecture"].get("n_genes", len(info["genes"])):
        raise InputError(
            "gene list length differs from the network input",
            path=str(path),
            field="architecture.n_genes",
        )
    return info


def _check_declared_size(architecture: dict[str, Any], encoder_path: Path, json_path: Path):
    """Refuse an architecture whose weights could not be in ``encoder.pt`` before allocating
    it (a model.json edited to a 2e9-unit layer would otherwise ask for terabytes): the
    network is first built on PyTorch's "meta" device, which allocates nothing."""
    if not encoder_path.is_file():
        raise InputError("model weights are missing", path=str(encoder_path))
    try:
        with torch.device("meta"):
            shadow = build_model(architecture)
    except InputError:
        raise
    except Exception as exc:  # a value the model classes cannot build from
        raise InputError(f"invalid architecture: {exc}", path=str(json_path)) from exc
    declared = sum(t.numel() * t.element_size() for t in shadow.state_dict().values())
    stored = encoder_path.stat().st_size
    if declared > stored:
        raise InputError(
            f"model.json declares {declared:,} bytes of weights but encoder.pt holds "
            f"{stored:,} bytes (edited or mismatched model files)",
            path=str(json_path),
            field="architecture",
        )


def load_model(
    source: ModelSource,
    *,
    genes_sha256_expected: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[EmbeddingModel, dict[str, Any]]:
    """Load a model folder (``encoder.pt`` + ``model.json``) or an ``(encoder, model_json)`` pair.

    The weights are read with ``torch.load(weights_only=True)`` (nothing is unpickled). When
    ``genes_sha256_expected`` is given the model's gene list must have that hash. Returns
    the network in eval mode and the parsed ``model.json``.
    """
    if isinstance(source, tuple):
        encoder_path, json_path = Path(source[0]), Path(source[1])
    else:
        encoder_path, json_path = Path(source) / "encoder.pt", Path(source) / "model.json"
    info = read_model_json(json_path)
    if genes_sha256_expected is not None and info["genes_sha256"] != genes_sha256_expected:
        raise InputError(
            f"model genes hash {info['genes_sha256'][:12]}... differs from the expected "
            f"{genes_sha256_expected[:12]}...",
            path=str(json_path),
            field="genes_sha256",
        )
    _check_declared_size(info["architecture"], encoder_path, json_path)
    net = build_model(info["architecture"])
    try:
        state = torch.load(encoder_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise InputError("model weights are missing", path=str(encoder_path)) from exc
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError on bad files
        raise InputError(f"cannot load model weights: {exc}", path=str(encoder_path)) from exc
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"weights do not fit the architecture: {exc}", path=str(encoder_path)
        ) from exc
    net.to(device)
    net.eval()
    return net, info


def model_input(module: EmbeddingModel, chunk, device: torch.device) -> torch.Tensor | SparseRows:
    """A batch as the model takes it: CSR rows stay sparse for a model whose first layer
    sums weight columns (``sparse_input``); anything else becomes a dense float32 tensor."""
    if sp.issparse(chunk) and module.sparse_input:
        return SparseRows.from_csr(chunk, device)
    dense = chunk.toarray() if sp.issparse(chunk) else np.asarray(chunk)
    return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)).to(device)


def embed(module: EmbeddingModel, X_norm, batch_size: int = 4096) -> np.ndarray:
    """Embed normalised rows (CSR or dense, genes in the model's order) in batches; CSR
    batches are not densified for models that take sparse input."""
    n = X_norm.shape[0]
    device = next(module.parameters()).device
    out = np.empty((n, module.embedding_dim), dtype=np.float32)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = model_input(module, X_norm[start : start + batch_size], device)
            out[start : start + len(x)] = module.embed(x).float().cpu().numpy()
    module.train(was_training)
    return out


def annotate(module: EmbeddingModel, X_norm, batch_size: int = 4096) -> np.ndarray | None:
    """The model's own class indices for normalised rows (None when it only embeds)."""
    n = X_norm.shape[0]
    device = next(module.parameters()).device
    out = np.empty(n, dtype=np.int64)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                x = model_input(module, X_norm[start : start + batch_size], device)
                pred = module.annotate(x)
                if pred is None:
                    return None
                out[start : start + len(x)] = pred.cpu().numpy()
    finally:
        module.train(was_training)
    return out
