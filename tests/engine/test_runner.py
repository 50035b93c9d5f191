"""The local engine: caching proven by counting executions, failures, --from, --only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kfg.core.load import LoadResult
from kfg.engine import runner
from kfg.engine.cache import Cache
from kfg.engine.runner import Engine, EngineError, RunSummary
from tests.pipelines import make, messages


def _pipeline(tmp_path: Path, fail: bool = False) -> tuple[LoadResult, Path]:
    """load -> (double, square) -> total; `scale` is read by `double` only. Every cell
    appends its step's name to a counter file, so executions are counted, not timed."""
    counter = tmp_path / "executions.txt"
    note = f"open({str(counter)!r}, 'a').write('{{}}\\n')"
    result = make(
        tmp_path,
        [
            ("code", "scale = 2\noffset = 1"),
            ("code", "numbers = list(range(5))\n" + note.format("load")),
            ("code", "doubled = [n * scale for n in numbers]\n" + note.format("double")),
            (
                "code",
                ("1 / 0\n" if fail else "")
                + "squared = [n * n for n in numbers]\n"
                + note.format("square"),
            ),
            ("code", "total = float(sum(doubled) + sum(squared))\n" + note.format("total")),
        ],
        [
            {"name": "load", "cells": [2]},
            {"name": "double", "cells": [3]},
            {"name": "square", "cells": [4]},
            {"name": "total", "cells": [5]},
        ],
        parameters={"cell": 1},
        metrics=[{"name": "total", "variable": "total"}],
    )
    assert result.ok, messages(result)
    return result, counter


def _engine(result: LoadResult, cache: Cache, **options: Any) -> Engine:
    assert result.pipeline is not None and result.flow is not None
    assert result.notebook is not None
    return Engine(result.pipeline, result.flow, result.notebook, cache, jobs=2, **options)


def _run(result: LoadResult, tmp_path: Path, **options: Any) -> RunSummary:
    return _engine(result, Cache(tmp_path / ".kfg"), **options).run()


def _executions(counter: Path) -> list[str]:
    lines = counter.read_text().split() if counter.exists() else []
    counter.write_text("")
    return sorted(lines)


def test_second_run_executes_nothing(tmp_path: Path) -> None:
    result, counter = _pipeline(tmp_path)
    first = _run(result, tmp_path)
    assert first.ok and first.metrics == {"total": 50.0}
    assert _executions(counter) == ["double", "load", "square", "total"]
    second = _run(result, tmp_path)
    assert second.ok and second.metrics == {"total": 50.0}
    assert _executions(counter) == []
    assert [s.status for s in second.steps] == ["cached"] * 4


def test_a_parameter_reruns_only_its_readers_and_what_they_change(tmp_path: Path) -> None:
    result, counter = _pipeline(tmp_path)
    _run(result, tmp_path)
    _executions(counter)
    changed = _run(result, tmp_path, parameters={"scale": 3})
    assert changed.metrics == {"total": 60.0}
    assert _executions(counter) == ["double", "total"]
    back = _run(result, tmp_path)  # the old values are still cached
    assert back.metrics == {"total": 50.0} and _executions(counter) == []


def test_no_cache_from_and_only(tmp_path: Path) -> None:
    result, counter = _pipeline(tmp_path)
    _run(result, tmp_path)
    _executions(counter)
    _run(result, tmp_path, use_cache=False)
    assert _executions(counter) == ["double", "load", "square", "total"]
    _run(result, tmp_path, rerun_from="square")
    assert _executions(counter) == ["square", "total"]
    only = _run(result, tmp_path, only="double")
    assert _executions(counter) == ["double"]  # --only runs the step, cached or not
    assert [s.status for s in only.steps] == ["cached", "done", "skipped", "skipped"]


@pytest.mark.parametrize(
    ("ending", "cause"),
    [
        ("os._exit(3)", "exited with status 3 without reporting an error"),
        (
            "os.kill(os.getpid(), signal.SIGKILL)",
            "was killed by SIGKILL without reporting an error",
        ),
        # A clean exit is no success: the step saved nothing (kfg crashed on it once).
        ("os._exit(0)", "exited with status 0 before the step finished"),
    ],
)
@pytest.mark.parametrize("warm_idle", ["300", "0"])  # the warm server; else a fork or not
def test_a_step_that_dies_without_a_word_says_how_its_process_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str, cause: str, warm_idle: str
) -> None:
    # Not its last line of output alone, which is often a cell's result ("7").
    monkeypatch.setenv("KFG_WARM_IDLE", warm_idle)
    monkeypatch.setattr(runner, "_WARM", {})  # asked afresh, under this setting
    result = make(
        tmp_path,
        [("code", f"import os, signal\nprint('half way')\n{ending}\nx = 1")],
        [{"name": "dies", "cells": [1]}],
    )
    assert result.ok, messages(result)
    (state,) = _run(result, tmp_path).steps
    assert state.status == "failed"
    assert state.error == (f"the step's process {cause}; the last line it printed: half way")


def test_only_needs_cached_inputs(tmp_path: Path) -> None:
    result, _ = _pipeline(tmp_path)
    with pytest.raises(EngineError, match="`--only total` needs step `load` from the cache"):
        _run(result, tmp_path, only="total")


def test_failure_keeps_what_finished_and_the_next_run_resumes(tmp_path: Path) -> None:
    broken, counter = _pipeline(tmp_path, fail=True)
    summary = _run(broken, tmp_path)
    assert not summary.ok
    states = {s.name: s for s in summary.steps}
    assert states["square"].status == "failed"
    assert states["square"].error == (
        "step `square` failed in cell 4, line 1: ZeroDivisionError: division by zero"
    )
    assert states["square"].log is not None and "Traceback" in states["square"].log.read_text()
    assert states["double"].status == "done"  # an independent branch still ran
    assert states["total"].status == "skipped"
    _executions(counter)
    fixed, _ = _pipeline(tmp_path)  # the notebook is fixed: same cells, no 1 / 0
    resumed = _run(fixed, tmp_path)
    assert resumed.ok
    assert _executions(counter) == ["square", "total"]


def test_independent_steps_run_at_the_same_time(tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    record = (
        "import time, pathlib\nstart = time.time()\ntime.sleep(1.0)\n"
        f"pathlib.Path({str(stamps)!r}, '{{}}').write_text(f'{{{{start}}}} {{{{time.time()}}}}')\n"
    )
    result = make(
        tmp_path,
        [
            ("code", "x = 1"),
            ("code", record.format("a") + "a = x"),
            ("code", record.format("b") + "b = x"),
        ],
        [{"name": "x", "cells": [1]}, {"name": "a", "cells": [2]}, {"name": "b", "cells": [3]}],
    )
    assert result.ok, messages(result)
    assert _run(result, tmp_path).ok
    (a_start, a_end), (b_start, b_end) = (
        map(float, (stamps / n).read_text().split()) for n in ("a", "b")
    )
    assert a_start < b_end and b_start < a_end  # the two sleeps overlapped


def _random_pipeline(tmp_path: Path) -> LoadResult:
    """One step drawing a fresh random number each time it really executes."""
    result = make(
        tmp_path,
        [("code", "import random\ndraw = random.random()")],
        [{"name": "draw", "cells": [1]}],
        metrics=[{"name": "draw", "variable": "draw"}],
    )
    assert result.ok, messages(result)
    return result


@pytest.mark.parametrize(
    "options", [{"use_cache": False}, {"rerun_from": "draw"}, {"only": "draw"}], ids=str
)
def test_a_re_executed_step_reports_and_caches_its_fresh_result(
    tmp_path: Path, options: dict[str, object]
) -> None:
    result = _random_pipeline(tmp_path)
    first = _run(result, tmp_path).metrics["draw"]
    again = _run(result, tmp_path, **options)
    assert [s.status for s in again.steps] == ["done"]
    fresh = again.metrics["draw"]
    assert fresh != first
    cached = _run(result, tmp_path)
    assert [s.status for s in cached.steps] == ["cached"]
    assert cached.metrics["draw"] == fresh


def test_steps_that_can_never_start_end_the_run_instead_of_spinning(tmp_path: Path) -> None:
    import dataclasses

    result = make(
        tmp_path,
        [("code", "x = 1"), ("code", "y = x + 1")],
        [{"name": "a", "cells": [1]}, {"name": "b", "cells": [2]}],
    )
    assert result.ok, messages(result)
    # Validation refuses cycles; the scheduler must still never spin on one it is given.
    flow = result.flow
    assert flow is not None and result.pipeline is not None and result.notebook is not None
    a, b = flow.steps
    cyclic = dataclasses.replace(flow, steps=(dataclasses.replace(a, upstream=("b",)), b))
    engine = Engine(result.pipeline, cyclic, result.notebook, Cache(tmp_path / ".kfg"), jobs=1)
    with pytest.raises(EngineError, match="wait for each other"):
        engine.run()


def test_the_cache_ignores_itself_in_git(tmp_path: Path) -> None:
    import subprocess

    result, _ = _pipeline(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    _run(result, tmp_path)
    assert (tmp_path / ".kfg" / "steps").is_dir()
    untracked = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert untracked and ".kfg" not in untracked


def _entry_of(tmp_path: Path, step: str) -> Path:
    for result in (tmp_path / ".kfg" / "steps").glob("*/*/result.json"):
        if f'"step": "{step}"' in result.read_text():
            return result.parent
    raise AssertionError(f"no entry for {step}")


@pytest.mark.parametrize("damage", ["empty-result", "altered-output", "missing-output"])
def test_a_damaged_entry_is_set_aside_reported_once_and_the_step_reruns(
    tmp_path: Path, damage: str
) -> None:
    result, counter = _pipeline(tmp_path)
    first = _run(result, tmp_path)
    assert first.ok, [(s.name, s.error, s.log) for s in first.steps if s.error]
    _executions(counter)
    entry = _entry_of(tmp_path, "load")
    if damage == "empty-result":
        (entry / "result.json").write_text("")
    elif damage == "altered-output":
        (entry / "outputs" / "numbers").write_bytes(b"not what was cached")
    else:
        (entry / "outputs" / "numbers").unlink()
    warnings: list[str] = []
    engine = _engine(result, Cache(tmp_path / ".kfg", warn=warnings.append))
    summary = engine.run()
    assert summary.ok and summary.metrics == {"total": 50.0}
    assert _executions(counter) == ["load"]  # its readers get identical values: cached
    assert len(warnings) == 1 and "damaged" in warnings[0]
    assert len(list((tmp_path / ".kfg" / "damaged").iterdir())) == 1
    assert [s.status for s in _run(result, tmp_path).steps] == ["cached"] * 4


def test_a_value_that_cannot_travel_fails_its_step_naming_both_ends(tmp_path: Path) -> None:
    # As xgboost.DMatrix: pickling raises. The first `kfg run` says so in one line.
    result = make(
        tmp_path,
        [
            (
                "code",
                "class DMatrix:\n    def __reduce__(self):\n"
                "        raise TypeError('cannot pickle a ctypes handle')\n"
                "dtrain = DMatrix()",
            ),
            ("code", "rows = repr(dtrain)"),
        ],
        [{"name": "prepare", "cells": [1]}, {"name": "train", "cells": [2]}],
    )
    assert result.ok, messages(result)
    summary = _run(result, tmp_path)
    states = {s.name: s for s in summary.steps}
    assert states["prepare"].status == "failed"
    assert states["prepare"].error is not None
    assert states["prepare"].error.startswith(
        "`dtrain` (a __main__.DMatrix) cannot be passed from step `prepare` to `train`:"
    )
    assert "build `dtrain` in `train` instead" in states["prepare"].error
    assert states["train"].status == "skipped"


def _record_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the engine started, in order: the forkserver's warm-up and each step."""
    from kfg.engine import runner

    events: list[str] = []
    launch = runner.launch

    def recording_launch(
        spec: Path, log: Path, preload: list[str], threads: int | None = None
    ) -> object:
        events.append("step")
        return launch(spec, log, preload, threads)

    def recording_warm_up(
        preload: list[str],
        config: Path | None = None,
        threads: int | None = None,
        command: str = "run",
    ) -> None:
        events.append("warm-up")

    monkeypatch.setattr(runner, "warm_up", recording_warm_up)
    monkeypatch.setattr(runner, "launch", recording_launch)
    return events


def test_the_prelude_warms_up_before_the_first_step_and_not_for_a_cached_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = _pipeline(tmp_path)
    events = _record_starts(monkeypatch)
    _run(result, tmp_path)
    assert events == ["warm-up"] + ["step"] * 4  # started before any step, once
    events.clear()
    _run(result, tmp_path)  # everything cached: nothing imports pandas for nothing
    assert events == []
    _run(result, tmp_path, parameters={"scale": 3})  # a miss past cached steps
    assert events == ["warm-up", "step", "step"]


def test_forced_runs_warm_up_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = _pipeline(tmp_path)
    _run(result, tmp_path)
    events = _record_starts(monkeypatch)
    for options in ({"use_cache": False}, {"rerun_from": "total"}, {"only": "square"}):
        events.clear()
        _run(result, tmp_path, **options)
        assert events[0] == "warm-up" and "step" in events, options


def test_a_step_does_not_run_the_programs_main_script_again(tmp_path: Path) -> None:
    # CPython 3.11 multiprocessing/spawn.py (get_preparation_data, _fixup_main_from_path):
    # a child started through the forkserver re-executes the parent's `__main__` file as
    # `__mp_main__` unless `__main__` is a `-m` module named `*.__main__`. The `kfg` console
    # script is such a file: each step imported kfg's CLI again.
    _, counter = _pipeline(tmp_path)
    marker = tmp_path / "driver-executions.txt"
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import sys\n"
        f"open({str(marker)!r}, 'a').write('driver\\n')  # no main guard, like a console script\n"
        "from kfg.core.load import load_pipeline\n"
        "from kfg.engine.cache import Cache\n"
        "from kfg.engine.runner import Engine\n"
        "if __name__ == '__main__':\n"
        "    loaded = load_pipeline(__import__('pathlib').Path(sys.argv[1]))\n"
        "    engine = Engine(loaded.pipeline, loaded.flow, loaded.notebook,"
        " Cache(__import__('pathlib').Path(sys.argv[2])))\n"
        "    sys.exit(0 if engine.run().ok else 1)\n"
    )
    config = tmp_path / "kale.yaml"
    done = subprocess.run(
        [sys.executable, str(driver), str(config), str(tmp_path / ".kfg")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0, done.stderr
    assert _executions(counter) == ["double", "load", "square", "total"]
    assert marker.read_text().split() == ["driver"]  # once, by the driver itself


def test_the_forkserver_preloads_the_prelude_then_what_its_values_need(tmp_path: Path) -> None:
    from kfg.engine.runner import preload_modules
    from kfg.runtime.step import format_imports

    result = make(
        tmp_path,
        [
            ("code", "import numpy as np\nfrom pandas import DataFrame"),
            ("code", "table = DataFrame({'a': np.arange(3)})"),
            ("code", "n = len(table)"),
        ],
        [{"name": "make", "cells": [2]}, {"name": "count", "cells": [3]}],
        prelude=[1],
    )
    assert result.ok, messages(result)
    assert result.pipeline is not None and result.notebook is not None
    preload = preload_modules(result.pipeline, result.notebook)
    prelude = ["kfg.runtime.step", "kfg.engine.worker", "numpy", "pandas"]
    assert preload == prelude + format_imports(prelude)
