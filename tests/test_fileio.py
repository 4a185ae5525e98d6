"""Atomic writes: all or nothing, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from scatlas.fileio import atomic_path, atomic_write_text, md5_file, sha256_file


def test_atomic_write_replaces_and_uses_umask(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_leaves_target_untouched(tmp_path):
    target = tmp_path / "out.h5ad"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".h5ad") as tmp:
        assert tmp.name.endswith(".h5ad.tmp")
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5ad"]


def test_checksums(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert md5_file(path) == "900150983cd24fb0d6963f7d28e17f72"
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
