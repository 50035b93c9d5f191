"""Each step's share of the cores when kfg runs steps side by side."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfg.core.load import LoadResult
from kfg.engine import runner, threads, warm
from kfg.engine.cache import Cache
from kfg.engine.runner import Engine
from kfg.engine.threads import VARIABLES, environment, per_step, width
from kfg.engine.tuning import tune
from tests.pipelines import make, messages


def _antichain_by_brute_force(upstream: dict[str, list[str]]) -> int:
    below: dict[str, set[str]] = {}
    for name, sources in upstream.items():
        below[name] = set(sources).union(*(below[s] for s in sources))
    names = list(upstream)
    for size in range(len(names), 0, -1):
        for group in itertools.combinations(names, size):
            if all(
                a not in below[b] and b not in below[a] for a, b in itertools.combinations(group, 2)
            ):
                return size
    return 0


@st.composite
def _dags(draw: st.DrawFn) -> dict[str, list[str]]:
    count = draw(st.integers(min_value=0, max_value=8))
    names = [f"s{i}" for i in range(count)]
    return {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True) if i else st.just([]))
        for i, name in enumerate(names)
    }


@settings(max_examples=300, deadline=None)
@given(_dags())
def test_width_is_the_largest_set_of_steps_none_of_which_waits_for_another(
    upstream: dict[str, list[str]],
) -> None:
    assert width(upstream) == _antichain_by_brute_force(upstream)


def test_width_of_the_shapes_pipelines_take() -> None:
    wine = {"load": [], "prep": ["load"], "features": ["prep"]}
    wine |= {m: ["features"] for m in ("lr", "forest", "svm", "bayes", "tree")}
    wine["results"] = ["lr", "forest", "svm", "bayes", "tree"]
    assert width(wine) == 5
    # a long chain is one step at a time, and walking it needs no deep recursion
    chain = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(5000)}
    assert width(chain) == 1
    assert width({f"s{i}": [] for i in range(300)}) == 300
    # a step that waits for another only through a third still cannot run beside it
    assert width({"a": [], "b": ["a"], "c": ["b"], "d": ["a"]}) == 2


def test_the_cores_are_shared_unless_one_step_runs_or_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads, "cores", lambda: 8)
    assert per_step(1, {}) is None  # one step at a time keeps the libraries' defaults
    assert per_step(2, {}) == 4
    assert per_step(3, {}) == 2
    assert per_step(16, {}) == 1  # never fewer than one
    for name in VARIABLES:
        assert per_step(4, {name: "3"}) is None, name
    assert per_step(4, {"OMP_NUM_THREADS": ""}) == 2  # set but empty: no choice made
    assert environment(None) == {}
    assert environment(2) == dict.fromkeys(VARIABLES, "2")


def _threads_seen(tmp_path: Path, steps: int) -> tuple[LoadResult, Path]:
    """A pipeline of `steps` independent steps, each reporting OMP_NUM_THREADS as it saw it
    (0 when unset), then a step that needs them all."""
    cells = [("code", "import os")]
    cells += [
        ("code", f"seen_{i} = float(os.environ.get('OMP_NUM_THREADS', '0'))") for i in range(steps)
    ]
    cells.append(("code", "total = " + " + ".join(f"seen_{i}" for i in range(steps))))
    result = make(
        tmp_path,
        cells,
        [{"name": f"s{i}", "cells": [i + 2]} for i in range(steps)]
        + [{"name": "total", "cells": [steps + 2]}],
        prelude=[1],
        metrics=[{"name": f"seen-{i}", "variable": f"seen_{i}"} for i in range(steps)],
    )
    assert result.ok, messages(result)
    return result, tmp_path / ".kfg"


@pytest.fixture
def four_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Four cores, no thread variable of the user's, and this test's own warm servers."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 4)
    sockets = Path(tempfile.mkdtemp(prefix="kfgw-", dir="/tmp"))  # a socket path is short
    monkeypatch.setenv(warm.DIRECTORY_VARIABLE, str(sockets / "warm"))
    monkeypatch.setenv(warm.IDLE_VARIABLE, "30")
    monkeypatch.setattr(runner, "_WARM", {})
    yield
    warm.stop_servers()
    shutil.rmtree(sockets, ignore_errors=True)


@pytest.mark.parametrize("warm_idle", ["30", "0"])  # a warm server's step; else a fork or not
@pytest.mark.usefixtures("four_cores")
def test_steps_that_run_side_by_side_get_their_share_in_every_way_a_step_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm_idle: str
) -> None:
    monkeypatch.setenv(warm.IDLE_VARIABLE, warm_idle)
    result, cache = _threads_seen(tmp_path, 2)
    assert result.pipeline is not None and result.flow is not None
    assert result.notebook is not None
    side_by_side = Engine(result.pipeline, result.flow, result.notebook, Cache(cache), jobs=2)
    summary = side_by_side.run()
    assert summary.ok, [s.error for s in summary.steps]
    assert summary.metrics == {"seen-0": 2.0, "seen-1": 2.0}
    alone = Engine(
        result.pipeline, result.flow, result.notebook, Cache(cache), jobs=1, use_cache=False
    )
    summary = alone.run()
    assert summary.ok and summary.metrics == {"seen-0": 0.0, "seen-1": 0.0}
    # The caller's environment is as it was: only the steps' processes carry the cap.
    assert not any(os.environ.get(name) for name in VARIABLES)


@pytest.mark.usefixtures("four_cores")
def test_a_linear_pipeline_keeps_every_core_and_a_users_choice_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = make(
        tmp_path,
        [
            ("code", "import os"),
            ("code", "a = float(os.environ.get('OMP_NUM_THREADS', '0'))"),
            ("code", "b = a + float(os.environ.get('MKL_NUM_THREADS', '0'))"),
        ],
        [{"name": "one", "cells": [2]}, {"name": "two", "cells": [3]}],
        prelude=[1],
        metrics=[{"name": "b", "variable": "b"}],
    )
    assert result.ok, messages(result)
    assert result.pipeline is not None and result.flow is not None
    assert result.notebook is not None
    engine = Engine(result.pipeline, result.flow, result.notebook, Cache(tmp_path / "c"), jobs=4)
    assert engine.threads is None
    assert engine.run().metrics == {"b": 0.0}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    chosen = Engine(
        result.pipeline,
        result.flow,
        result.notebook,
        Cache(tmp_path / "c"),
        sharing=2,
        use_cache=False,
    )
    assert chosen.threads is None  # the user chose: kfg sets nothing, not even MKL's
    assert chosen.run().metrics == {"b": 3.0}


@pytest.mark.usefixtures("four_cores")
def test_parallel_trials_share_the_cores_and_each_command_prestarts_its_server(
    tmp_path: Path,
) -> None:
    result = make(
        tmp_path,
        [
            ("code", "a = 1"),
            ("code", "import os"),
            ("code", "score = float(os.environ.get('OMP_NUM_THREADS', '0')) * 10 + a"),
        ],
        [{"name": "score", "cells": [3]}],
        parameters={"cell": 1},
        prelude=[2],
        metrics=[{"name": "score", "variable": "score"}],
        tuning={
            "objective": {"metric": "score", "type": "maximize"},
            "algorithm": {"name": "random", "settings": {"random_state": 1}},
            "maxTrials": 4,
            "parallelTrials": 2,
            "parameters": {"a": {"type": "int", "min": 1, "max": 3}},
        },
    )
    assert result.ok, messages(result)
    assert result.pipeline is not None and result.flow is not None
    assert result.notebook is not None
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(tmp_path / "c"))
    # one step per trial, two trials at once, four cores: two threads each
    assert all(t.state == "COMPLETE" for t in summary.trials)
    assert {t.value for t in summary.trials} <= {21.0, 22.0, 23.0}
    # A run of the same file, one step at a time, keeps the libraries' defaults; each
    # command's next start prestarts the server it used last (kfg.cli._prestart).
    ran = Engine(result.pipeline, result.flow, result.notebook, Cache(tmp_path / "c")).run()
    assert ran.ok and ran.metrics["score"] == 1.0
    folder = warm.socket_directory()
    assert folder is not None
    config = tmp_path / "kale.yaml"
    noted = {c: json.loads(warm._hint(folder, config, c).read_text()) for c in ("run", "tune")}
    assert noted["tune"]["threads"] == 2 and noted["run"]["threads"] is None
    assert len(list(folder.glob("*.preload"))) == 2
