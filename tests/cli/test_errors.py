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


CONSOLE = """
import atexit, sys, threading
from pathlib import Path

marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text("atexit ran"))  # as coverage's, before kfg's


class Witness:  # freed only when the interpreter tears itself down
    def __del__(self) -> None:
        Path(str(marker) + ".teardown").write_text("torn down")


witness = Witness()
if sys.argv[2] == "thread":  # a thread left running: the interpreter must join it
    threading.Thread(target=lambda: __import__("time").sleep(0.5)).start()
sys.argv = ["kfg", *sys.argv[3:]]
from kfg.cli import console
console()
"""


def _console(tmp_path: Path, thread: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CONSOLE, str(tmp_path / "marker"), thread, *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_the_program_ends_with_its_status_its_output_and_every_exit_handler(
    tmp_path: Path,
) -> None:
    # `console` skips the interpreter's teardown, never what exit must still do.
    for thread in ("none", "thread"):
        valid = _console(tmp_path, thread, "schema")
        assert valid.returncode == 0 and valid.stdout.rstrip().endswith("}"), thread
        assert (tmp_path / "marker").read_text() == "atexit ran"
        (tmp_path / "marker").unlink()
        # the teardown itself is skipped unless a thread makes it necessary
        torn_down = tmp_path / "marker.teardown"
        assert torn_down.exists() == (thread == "thread"), thread
        torn_down.unlink(missing_ok=True)
        broken = tmp_path / "kale.yaml"
        broken.write_text("apiVersion: kfg.dev/v1alpha1\nkind: [\n")
        invalid = _console(tmp_path, thread, "validate", str(broken))
        assert invalid.returncode == 1 and "kale.yaml:3:1: error" in invalid.stdout
        assert (tmp_path / "marker").exists()
        (tmp_path / "marker").unlink()
        usage = _console(tmp_path, thread, "render", "--no-such-option")
        assert usage.returncode == 2 and (tmp_path / "marker").exists()
        (tmp_path / "marker").unlink()
