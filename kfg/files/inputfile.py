"""Reading a user's file without trusting what the path points at.

A path named kale.yaml can be a FIFO (opening it for reading waits for a writer that never
comes), a character device such as /dev/zero (read until memory runs out) or a file of any
size. Every input file kfg reads goes through `read_bounded`: opened without blocking,
refused unless it is a regular file, and never read past its limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kfg.errors import KfgError

_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


class InputFileError(KfgError):
    """The file cannot be read as input; `code` says why for findings and results."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them, or InputFileError."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputFileError("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise InputFileError("not-a-file", f"not a regular file ({kind})")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # a file that grows while it is read is cut at the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputFileError("too-large", f"file larger than {_size(limit)}")
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    if limit >= 1 << 20 and limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB"
    return f"{limit // 1024} KiB"
