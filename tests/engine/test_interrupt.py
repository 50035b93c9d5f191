"""Ctrl-C stops kfg run and the steps it started, and nothing else; finished steps stay cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.pipelines import make, messages


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_interrupt_stops_only_this_runs_steps(tmp_path: Path) -> None:
    pid_file = tmp_path / "step.pid"
    result = make(
        tmp_path,
        [
            ("code", "x = 1"),
            (
                "code",
                f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                "time.sleep(60)\ny = x",
            ),
        ],
        [{"name": "quick", "cells": [1]}, {"name": "slow", "cells": [2]}],
    )
    assert result.ok, messages(result)
    bystander = subprocess.Popen(["sleep", "60"])
    run = subprocess.Popen(
        [sys.executable, "-m", "kfg", "run", "kale.yaml"],
        cwd=tmp_path,
        # A suite started in the background by a shell (`make test &`) inherits SIGINT
        # ignored, as POSIX has it, and so would kfg: Ctrl-C as a terminal sends it.
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.1)
        step = int(pid_file.read_text())
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 130, stderr
        assert "interrupted" in stderr
        for _ in range(50):
            if not _alive(step):
                break
            time.sleep(0.1)
        assert not _alive(step), "the step kept running"
        assert bystander.poll() is None, "an unrelated process was killed"
    finally:
        bystander.kill()
        run.kill()
    steps = list((tmp_path / ".kfg" / "steps").glob("*/*"))
    assert len(steps) == 1  # `quick` finished and is cached; `slow` left nothing half-written
