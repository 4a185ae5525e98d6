"""Pinning and signing releases.

The manifest lists every file of a release with its size and sha256 (and verification
refuses any file it does not list), so the manifest's own sha256 identifies the whole
release: a user can pin a release by it (``--expect-sha256``). A publisher can also sign
the manifest with an Ed25519 key (``cryptography``); the signature sits beside it as
``manifest.json.sig`` (base64) and ``--public-key`` refuses a release whose signature is
missing or does not verify.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from scatlas.fileio import atomic_write_bytes, sha256_file
from scatlas.release.format import MANIFEST, ReleaseError

SIGNATURE = MANIFEST + ".sig"


def manifest_sha256(root: Path) -> str:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ReleaseError("manifest.json is missing", path=str(path))
    return sha256_file(path)


def check_pin(root: Path, expect_sha256: str) -> None:
    """ReleaseError unless the release's manifest has the pinned sha256."""
    want = expect_sha256.strip().lower()
    got = manifest_sha256(root)
    if got != want:
        raise ReleaseError(
            f"manifest sha256 {got} is not the pinned {want} (another or an altered release)",
            path=str(Path(root) / MANIFEST),
        )


def generate_keypair(private_key: Path, public_key: Path) -> None:
    """A new Ed25519 key pair as PEM files; the private one readable by its owner only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for path in (private_key, public_key):
        if Path(path).exists():
            raise ReleaseError("key file exists already; not overwritten", path=str(path))
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    atomic_write_bytes(public_key, public_pem)


def _load_key(path: Path, private: bool):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    try:
        data = Path(path).read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (OSError, ValueError, TypeError) as exc:
        raise ReleaseError(f"cannot read the key: {exc}", path=str(path)) from exc
    want = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, want):
        raise ReleaseError("not an Ed25519 key", path=str(path))
    return key


def sign_release(root: Path, private_key: Path) -> Path:
    """Sign the release's manifest; writes ``manifest.json.sig``."""
    manifest = (Path(root) / MANIFEST).read_bytes()
    signature = _load_key(private_key, private=True).sign(manifest)
    out = Path(root) / SIGNATURE
    atomic_write_bytes(out, base64.b64encode(signature) + b"\n")
    out.chmod(0o444)
    return out


def verify_signature(root: Path, public_key: Path) -> None:
    """ReleaseError unless ``manifest.json.sig`` is a valid signature of the manifest by the
    holder of ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    sig_path = Path(root) / SIGNATURE
    if not sig_path.is_file():
        raise ReleaseError(
            "the release is not signed (manifest.json.sig is missing)", path=str(sig_path)
        )
    try:
        signature = base64.b64decode(sig_path.read_bytes().strip(), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ReleaseError(f"signature is not base64: {exc}", path=str(sig_path)) from exc
    key = _load_key(public_key, private=False)
    try:
        key.verify(signature, (Path(root) / MANIFEST).read_bytes())
    except InvalidSignature:
        raise ReleaseError(
            "bad signature: the manifest was not signed by this key, or was altered",
            path=str(sig_path),
        ) from None
