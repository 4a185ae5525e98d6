"""Exceptions that carry what a user needs to fix a problem: which file, field, URL or tool."""

from __future__ import annotations


class ScatlasError(Exception):
    """Base class for errors scatlas reports to users."""


class InputError(ScatlasError):
    """A bad input file or field."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None):
        where = ", ".join(
            p for p in (f"file {path}" if path else "", f"field {field!r}" if field else "") if p
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.path = path
        self.field = field


class ServiceError(ScatlasError):
    """A remote service failed or answered something unusable."""

    def __init__(self, message: str, *, url: str | None = None, reason: str | None = None):
        super().__init__(f"{message} [{url}]" if url else message)
        self.url = url
        self.reason = reason or message


class ToolError(ScatlasError):
    """An external program exited non-zero."""

    def __init__(self, tool: str, returncode: int, stderr_tail: str = ""):
        msg = f"{tool} exited with status {returncode}"
        if stderr_tail:
            msg += f": {stderr_tail.strip()[-800:]}"
        super().__init__(msg)
        self.tool = tool
        self.returncode = returncode
        self.stderr_tail = stderr_tail
