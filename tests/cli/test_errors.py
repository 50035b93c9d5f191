"""Exit statuses: expected failures say what is wrong (1 or 2); a bug says it is one (3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES, REPO

PATCHED_MAIN = """
import sys
import kfg.core.load as load

def broken(*args, **kwargs):
    raise {error}

load.load_pipeline = broken
from kfg.cli import main
sys.argv = ["kfg", "validate", sys.argv[1]]
main()
"""


def _run(error: str, log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PATCHED_MAIN.format(error=error), str(EXAMPLES / "wine")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "KFG_LOG": str(log)},
        timeout=60,
    )


def test_a_bug_exits_3_with_one_line_and_the_traceback_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "kfg.log"
    result = _run('KeyError("spec")', log)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "internal error (KeyError): this is a bug in kfg" in result.stderr
    assert str(log) in result.stderr
    report = log.read_text()
    assert "Traceback (most recent call last)" in report and "KeyError: 'spec'" in report
    assert "kfg validate" in report


def test_an_expected_failure_raised_anywhere_exits_with_its_own_status(tmp_path: Path) -> None:
    log = tmp_path / "kfg.log"
    invalid = _run('__import__("kfg.errors").errors.KfgError("the notebook is gone")', log)
    assert (invalid.returncode, invalid.stderr) == (1, "kfg: the notebook is gone\n")
    usage = _run('__import__("kfg.errors").errors.UsageError("--x takes a number")', log)
    assert (usage.returncode, usage.stderr) == (2, "kfg: --x takes a number\n")
    assert not log.exists()
