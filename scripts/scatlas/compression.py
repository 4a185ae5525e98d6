"""Reading files that may or may not be gzip-compressed, decided by their content (the magic
bytes), not by their name."""

from __future__ import annotations

import gzip
import io
import os
import shutil
from pathlib import Path
from typing import IO

GZIP_MAGIC = b"\x1f\x8b"


def is_gzipped(path: str | os.PathLike) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_text(path: str | os.PathLike, encoding: str = "utf-8") -> IO[str]:
    """Open ``path`` for reading text, decompressing gzip transparently."""
    if is_gzipped(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="replace")
    return open(path, encoding=encoding, errors="replace")


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing gzip transparently."""
    if is_gzipped(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def decompressed_copy(path: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Write the decompressed content of ``path`` to ``dest`` (a plain copy if not gzipped)."""
    with open_binary(path) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return Path(dest)
