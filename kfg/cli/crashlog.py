"""Where a bug's traceback goes: a log file the one-line message points to."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path

from kfg import __version__


def log_path() -> Path:
    """`$KFG_LOG` if set, else kfg.log in the user's cache directory (XDG)."""
    explicit = os.environ.get("KFG_LOG")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kfg" / "kfg.log"


def write_crash_log(exc: BaseException) -> Path:
    """Write the report of `exc` (replacing the previous one) and return where it went."""
    report = (
        "### kfg internal error\n\n"
        f"- kfg {__version__}, Python {platform.python_version()} on {platform.platform()}\n"
        f"- command: {' '.join(sys.argv)}\n\n"
        "```\n" + "".join(traceback.format_exception(exc)) + "```\n"
    )
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report, encoding="utf-8")
        return path
    except OSError:  # a read-only home: a temporary file still keeps the traceback
        fd, name = tempfile.mkstemp(prefix="kfg-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(report)
        return Path(name)
