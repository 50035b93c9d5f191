"""The step runtime both orchestrators share (see `step`).

Its source file is a fact other layers need without importing it: the package's
ConfigMap carries it, the local cache keys every step on it, and a warm step server
starts afresh when it changes. It is located and hashed here, once.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "step.py"


@cache
def source_bytes() -> bytes:
    return SOURCE.read_bytes()


@cache
def source_digest() -> str:
    """The sha256 of the runtime's exact bytes (the ConfigMap's name and the components'
    check use it, so no newline translation may come between)."""
    return hashlib.sha256(source_bytes()).hexdigest()
