"""npm packages the tests run with Node.js (installed into a temporary prefix)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

NODE = shutil.which("node")


def install(package: str, prefix: Path) -> Path:
    """`npm install package` into `prefix`; returns its node_modules directory."""
    npm = shutil.which("npm")
    assert npm is not None, "npm comes with Node.js"
    subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), package],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return prefix / "node_modules"
