"""Choosing the torch device (shared by training, publishing and annotating cells)."""

from __future__ import annotations

import logging

import torch

from scatlas.errors import InputError

log = logging.getLogger(__name__)


def select_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. An unavailable ``cuda`` falls back to CPU."""
    device = "cuda" if device == "gpu" else str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(
            f"unknown device {device!r}: use auto, cpu or cuda", field="device"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        log.warning("device %s requested but CUDA is not available; using the CPU", device)
        return torch.device("cpu")
    return dev
