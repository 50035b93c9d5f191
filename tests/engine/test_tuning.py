"""kfg tune: Katib's search space and algorithms on Optuna, cached upstream steps, resuming."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from kfg.config.model import SearchSpace, Tuning
from kfg.core.load import load_pipeline
from kfg.engine.cache import LOG, Cache
from kfg.engine.tuning import (
    LEGACY_STUDIES,
    LOCAL_SETTINGS,
    RECORD,
    SHARED_STUDIES,
    STUDIES,
    TuneError,
    local_notes,
    sampler,
    study_name,
    suggest,
    tune,
)
from kfg.launcher.params import ParameterError, convert
from tests.pipelines import make, messages

TUNING = {
    "objective": {"metric": "score", "type": "maximize"},
    "algorithm": {"name": "tpe", "settings": {"random_state": 7, "n_EI_candidates": 8}},
    "maxTrials": 6,
    "parallelTrials": 2,
    "parameters": {
        "a": {"type": "int", "min": 1, "max": 5},
        "b": {"type": "categorical", "values": ["x", "y"]},
    },
}


def _pipeline(tmp_path: Path, tuning: dict[str, Any] = TUNING) -> tuple[Any, Path]:
    counter = tmp_path / "executions.txt"
    note = f"open({str(counter)!r}, 'a').write('{{}}\\n')"
    result = make(
        tmp_path,
        [
            ("code", "a = 1\nb = 'x'\nc = 0.5"),
            ("code", "base = [1, 2, 3]\n" + note.format("load")),
            (
                "code",
                "score = float(sum(base) * a + (1 if b == 'y' else 0))\n" + note.format("score"),
            ),
        ],
        [{"name": "load", "cells": [2]}, {"name": "train", "cells": [3]}],
        parameters={"cell": 1},
        metrics=[{"name": "score", "variable": "score"}],
        tuning=tuning,
    )
    assert result.ok, messages(result)
    return result, counter


def test_trials_reuse_upstream_steps_and_a_study_resumes(tmp_path: Path) -> None:
    result, counter = _pipeline(tmp_path)
    cache = Cache(tmp_path / ".kfg")
    summary = tune(result.pipeline, result.flow, result.notebook, cache)
    assert summary.new_trials == 6
    assert all(t.state == "COMPLETE" for t in summary.trials)
    runs = counter.read_text().split()
    assert runs.count("load") == 1  # the step no tuned parameter reaches ran once
    assert summary.best is not None and summary.best.value == max(
        t.value or 0 for t in summary.trials
    )
    again = tune(result.pipeline, result.flow, result.notebook, cache)
    assert again.new_trials == 0 and len(again.trials) == 6  # stored in the journal, resumed
    assert again.trials == summary.trials  # with what each trial's run did
    more = tune(result.pipeline, result.flow, result.notebook, cache, trials=8)
    assert more.new_trials == 2


def test_changing_what_a_trial_computes_starts_a_new_study(tmp_path: Path) -> None:
    """Trials of different code are not comparable: the study is named after the search,
    the steps' and prelude's code and the untuned parameters' values, not the trial count."""
    first, _ = _pipeline(tmp_path)
    name = study_name(first.pipeline, first.notebook)
    more, _ = _pipeline(tmp_path, {**TUNING, "maxTrials": 9})
    assert study_name(more.pipeline, more.notebook) == name
    book = tmp_path / "n.ipynb"
    for old, new in [("sum(base) * a", "sum(base) * a * 2"), ("c = 0.5", "c = 0.7")]:
        _pipeline(tmp_path)
        book.write_text(book.read_text().replace(old, new))
        changed = load_pipeline(tmp_path / "kale.yaml")
        assert changed.pipeline and changed.notebook, old
        assert study_name(changed.pipeline, changed.notebook) != name, old


def test_the_study_is_a_journal_file_and_plots_are_drawn_only_when_asked(tmp_path: Path) -> None:
    result, _ = _pipeline(tmp_path, {**TUNING, "maxTrials": 2})
    cache = Cache(tmp_path / ".kfg")
    summary = tune(result.pipeline, result.flow, result.notebook, cache)
    assert summary.new_trials == 2 and summary.plots == {}
    assert not (cache.root / "tune").exists()  # no matplotlib on the way to the results
    name = study_name(result.pipeline, result.notebook)
    assert [p.name for p in (cache.root / STUDIES).iterdir()] == [f"{name}.journal"]
    assert not (cache.root / SHARED_STUDIES).exists()
    assert not (cache.root / LEGACY_STUDIES).exists()
    # Asked for later, of a finished study: drawn from the stored trials, none run.
    drawn = tune(result.pipeline, result.flow, result.notebook, cache, plots=True)
    assert drawn.new_trials == 0 and len(drawn.trials) == 2
    assert Path(drawn.plots["png"]).is_file() and Path(drawn.plots["html"]).is_file()


def test_a_study_an_older_kfg_kept_in_sqlite_is_copied_and_resumes(tmp_path: Path) -> None:
    result, _ = _pipeline(tmp_path, {**TUNING, "maxTrials": 3})
    root = tmp_path / ".kfg"
    root.mkdir()
    # What kfg stored before the journal: SQLite, each field its own user attribute.
    old = optuna.create_study(
        storage=f"sqlite:///{root / LEGACY_STUDIES}",
        study_name=study_name(result.pipeline, result.notebook),
        direction="maximize",
    )
    trial = old.ask()
    trial.suggest_int("a", 1, 5)
    trial.suggest_categorical("b", ["x", "y"])
    trial.set_user_attr("executed", ["load", "train"])
    trial.set_user_attr("metrics", {"score": 99.0})
    trial.set_user_attr("seconds", 1.5)
    old.tell(trial, 99.0)
    warnings: list[str] = []
    cache = Cache(root, warn=warnings.append)
    summary = tune(result.pipeline, result.flow, result.notebook, cache)
    assert summary.new_trials == 2  # 3 trials wanted, 1 stored
    first = summary.trials[0]
    assert (first.value, first.metrics, first.executed) == (
        99.0,
        {"score": 99.0},
        ("load", "train"),
    )
    assert len(warnings) == 1 and "was copied from" in warnings[0]
    again = tune(result.pipeline, result.flow, result.notebook, Cache(root, warn=warnings.append))
    assert again.new_trials == 0 and len(again.trials) == 3 and len(warnings) == 1  # copied once


def test_a_study_an_older_kfg_kept_in_the_shared_journal_is_copied_and_resumes(
    tmp_path: Path,
) -> None:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    result, _ = _pipeline(tmp_path, {**TUNING, "maxTrials": 3})
    root = tmp_path / ".kfg"
    root.mkdir()
    # What kfg stored before a journal per study: every study in `studies.journal`.
    shared = JournalStorage(JournalFileBackend(str(root / SHARED_STUDIES)))
    optuna.create_study(storage=shared, study_name="other-study")
    old = optuna.create_study(
        storage=shared,
        study_name=study_name(result.pipeline, result.notebook),
        direction="maximize",
    )
    trial = old.ask()
    trial.suggest_int("a", 1, 5)
    trial.suggest_categorical("b", ["x", "y"])
    trial.set_user_attr(RECORD, {"executed": ["load"], "metrics": {"score": 99.0}, "seconds": 1})
    old.tell(trial, 99.0)
    before = (root / SHARED_STUDIES).read_bytes()
    warnings: list[str] = []
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(root, warn=warnings.append))
    assert summary.new_trials == 2  # 3 trials wanted, 1 stored
    assert (summary.trials[0].value, summary.trials[0].executed) == (99.0, ("load",))
    assert len(warnings) == 1 and "was copied from" in warnings[0]
    assert (root / SHARED_STUDIES).read_bytes() == before  # an older kfg still reads it
    # Only this study came along; the other stays where it was.
    copied = JournalStorage(JournalFileBackend(str(next((root / STUDIES).iterdir()))))
    assert [s.study_name for s in copied.get_all_studies()] == [
        study_name(result.pipeline, result.notebook)
    ]
    again = tune(result.pipeline, result.flow, result.notebook, Cache(root, warn=warnings.append))
    assert again.new_trials == 0 and len(again.trials) == 3 and len(warnings) == 1


def test_goal_stops_the_study(tmp_path: Path) -> None:
    tuning = {**TUNING, "objective": {"metric": "score", "type": "maximize", "goal": 1.0}}
    result, _ = _pipeline(tmp_path, tuning)
    summary = tune(
        result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"), parallel=1
    )
    assert summary.new_trials == 1


def test_grid_tries_every_combination(tmp_path: Path) -> None:
    tuning = {**TUNING, "algorithm": {"name": "grid"}, "maxTrials": 10}
    result, _ = _pipeline(tmp_path, tuning)
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"))
    tried = sorted((t.params["a"], t.params["b"]) for t in summary.trials)
    assert tried == [(a, b) for a in range(1, 6) for b in ("x", "y")]


def test_parallel_grid_never_repeats_a_point_and_a_finished_study_says_so(tmp_path: Path) -> None:
    # Resumed, three at once, asked for more trials than points: Optuna's GridSampler alone
    # draws already-tried points again once the points it has not handed out run short.
    tuning = {**TUNING, "algorithm": {"name": "grid"}, "maxTrials": 10, "parallelTrials": 3}
    result, _ = _pipeline(tmp_path, tuning)
    cache = Cache(tmp_path / ".kfg")
    first = tune(result.pipeline, result.flow, result.notebook, cache, trials=4)
    assert first.new_trials == 4 and first.finished is None
    rest = tune(result.pipeline, result.flow, result.notebook, cache, trials=16)
    tried = [(t.params["a"], t.params["b"]) for t in rest.trials]
    assert sorted(tried) == [(a, b) for a in range(1, 6) for b in ("x", "y")]
    assert rest.new_trials == 6
    again = tune(result.pipeline, result.flow, result.notebook, cache)
    assert again.new_trials == 0
    assert again.finished is not None and "all 10 grid points are tried" in again.finished


def test_rerunning_a_finished_study_says_how_to_extend_it(tmp_path: Path) -> None:
    tuning = {**TUNING, "maxTrials": 2}
    result, _ = _pipeline(tmp_path, tuning)
    cache = Cache(tmp_path / ".kfg")
    tune(result.pipeline, result.flow, result.notebook, cache)
    again = tune(result.pipeline, result.flow, result.notebook, cache)
    assert again.new_trials == 0
    assert again.finished is not None
    assert "is finished: 2 of 2 trials completed" in again.finished
    assert "--trials 4" in again.finished and "maxTrials" in again.finished


def _tuning(name: str, **settings: str | int | float | bool) -> Tuning:
    return Tuning(
        metric="m",
        goal_type="maximize",
        algorithm=name,
        parameters=(SearchSpace("x", "double", 0.0, 1.0),),
        algorithm_settings=settings,
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("random", optuna.samplers.RandomSampler),
        ("tpe", optuna.samplers.TPESampler),
        ("multivariate-tpe", optuna.samplers.TPESampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("sobol", optuna.samplers.QMCSampler),
    ],
)
def test_katib_algorithms_map_to_optuna_samplers(name: str, kind: type) -> None:
    assert isinstance(sampler(_tuning(name, random_state=1), {"x": "float"}), kind)


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_random_search_with_a_seed_draws_the_same_trials_however_they_interleave(
    jobs: int,
) -> None:
    # optuna 5.0.0 optuna/study/_optimize.py: `_optimize_sequential` reseeds the sampler
    # from the OS in every thread when n_jobs != 1, which made `random_state` do nothing
    # for parallel trials.
    space = [
        SearchSpace("lr", "double", 1e-4, 1e-1, distribution="logUniform"),
        SearchSpace("n", "int", 16, 128, step=16),
        SearchSpace("kind", "categorical", values=("a", "b", "c")),
    ]
    types = {"lr": "float", "n": "int", "kind": "str"}
    pause = random.Random()

    def drawn(seed: int, n_jobs: int) -> dict[int, dict[str, Any]]:
        tuning = _tuning("random", random_state=seed)
        study = optuna.create_study(sampler=sampler(tuning, types, n_jobs))

        def objective(trial: Any) -> float:
            values = [suggest(trial, s, types[s.name]) for s in space]
            time.sleep(pause.random() / 100)  # the threads finish in another order each run
            return float(values[0])

        study.optimize(objective, n_trials=12, n_jobs=n_jobs)
        return {t.number: t.params for t in study.trials}

    once = drawn(5, jobs)
    assert drawn(5, jobs) == once
    assert drawn(5, 1) == once  # parallel or not
    assert drawn(6, jobs) != once
    assert len({tuple(p.values()) for p in once.values()}) > 6  # still a random search
    # Not one value for all: each parameter varies across trials.
    assert all(len({p[s.name] for p in once.values()}) > 1 for s in space)


def test_hyperopts_tpe_runs_as_katib_runs_it() -> None:
    # hyperopt 0.2.5 hyperopt/tpe.py:639 (n_below = min(ceil(gamma * sqrt(n)), 25)) and
    # kubeflow/katib v0.19.0 pkg/suggestion/v1beta1/hyperopt/base_service.py:286-300
    # (n_startup_jobs is the number of trials Katib asks for at once)
    tpe = sampler(
        _tuning("tpe", gamma=0.5, prior_weight=2.0, n_EI_candidates=32, random_state=1),
        {"x": "float"},
        parallel=4,
    )
    assert [tpe._gamma(n) for n in (1, 16, 100, 10_000)] == [1, 2, 5, 25]
    assert tpe._n_startup_trials == 4 and tpe._n_ei_candidates == 32
    assert tpe._parzen_estimator_parameters.prior_weight == 2.0
    assert tpe._multivariate is False and tpe._constant_liar is False
    default = sampler(_tuning("tpe"), {"x": "float"})
    hyperopt = optuna.samplers._tpe.sampler.hyperopt_default_gamma
    assert all(default._gamma(n) == hyperopt(n) for n in range(1, 2000))
    assert default._n_startup_trials == 3  # parallelTrials' default


def test_katibs_optuna_service_options_are_kept() -> None:
    # kubeflow/katib v0.19.0 pkg/suggestion/v1beta1/optuna/service.py:79-85, 105-116
    tpe = sampler(_tuning("multivariate-tpe", n_startup_trials=5, n_ei_candidates=9), {})
    assert tpe._multivariate is True and tpe._constant_liar is True
    assert tpe._n_startup_trials == 5 and tpe._n_ei_candidates == 9


def test_settings_without_a_faithful_equivalent_are_said_so() -> None:
    assert local_notes(_tuning("tpe", gamma=0.3, random_state=2)) == []
    [sigma] = local_notes(_tuning("cmaes", sigma=0.5, restart_strategy="none"))
    assert sigma.startswith("`sigma: 0.5` runs as CmaEsSampler(sigma0=sigma / smallest range)")
    [restart] = local_notes(_tuning("cmaes", restart_strategy="ipop"))
    assert "without restarts" in restart
    assert local_notes(_tuning("bayesianoptimization", base_estimator="GP", acq_func="EI")) == []
    [forest] = local_notes(_tuning("bayesianoptimization", base_estimator="RF"))
    assert "have no Optuna equivalent" in forest
    [ignored] = local_notes(_tuning("sobol", random_state=3))
    assert "ignored here too" in ignored
    cma = sampler(_tuning("cmaes", sigma=0.25), {"x": "float"})
    assert cma._sigma0 == 0.25 and cma._n_startup_trials == 0  # x spans 1.0


def test_every_setting_katib_accepts_has_a_documented_local_meaning() -> None:
    from kfg.config.algorithms import ALGORITHMS

    accepted = {
        (a.name, s) for a in ALGORITHMS.values() if a.name != "hyperband" for s in a.settings
    }
    assert accepted == set(LOCAL_SETTINGS)


def test_algorithms_without_a_local_equivalent_are_errors() -> None:
    with pytest.raises(TuneError, match="hyperband"):
        sampler(_tuning("hyperband"), {"x": "float"})


def test_search_space_semantics() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    value = suggest(
        trial, SearchSpace("lr", "double", 1e-4, 1e-1, distribution="logUniform"), "float"
    )
    assert 1e-4 <= value <= 1e-1
    stepped = suggest(trial, SearchSpace("n", "int", 16, 128, step=16), "int")
    assert stepped % 16 == 0
    flag = suggest(trial, SearchSpace("f", "categorical", values=("true", "false")), "bool")
    assert isinstance(flag, bool)
    with pytest.raises(TuneError, match="`normal` distribution has no local equivalent"):
        suggest(trial, SearchSpace("z", "double", 0.0, 1.0, distribution="normal"), "float")


def test_int_parameters_take_the_same_values_locally_and_in_kfg_trial() -> None:
    """A value `kfg trial` refuses for an int parameter is refused by `kfg tune` too."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    with pytest.raises(TuneError, match="int but its search space is `double`"):
        suggest(trial, SearchSpace("n", "double", 50.0, 500.0), "int")
    with pytest.raises(ParameterError, match="not a whole number"):
        convert("n", "int", "123.4")
    whole = suggest(trial, SearchSpace("n", "discrete", values=(100.0, 200.0)), "int")
    assert isinstance(whole, int)
    assert convert("n", "int", str(float(whole))) == whole
    with pytest.raises(TuneError, match="not a whole number"):
        suggest(trial, SearchSpace("m", "discrete", values=(0.5,)), "int")


def test_cli_json(tmp_path: Path) -> None:
    _pipeline(tmp_path, {**TUNING, "earlyStopping": {"name": "medianstop"}})
    result = subprocess.run(
        [sys.executable, "-m", "kfg", "tune", "kale.yaml", "--trials", "3", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new_trials"] == 3 and summary["best"]["params"]
    assert "kfg: warning: early stopping (medianstop) is not applied locally" in result.stderr
    assert summary["notes"] and "medianstop" in summary["notes"][0]
    assert result.stderr.count("COMPLETE") == 3


def test_the_prelude_warms_up_before_optuna_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfg.engine import tuning

    result, _ = _pipeline(tmp_path, {**TUNING, "maxTrials": 2})
    started: list[list[str]] = []
    monkeypatch.setattr(
        tuning, "warm_up", lambda preload, config, threads, command: started.append(preload)
    )
    monkeypatch.delitem(sys.modules, "optuna")  # tune imports it again, after the warm-up
    real_import = __import__

    def watching_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "optuna" and not started:
            raise AssertionError("optuna imported before the forkserver was started")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", watching_import)
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"))
    assert summary.new_trials == 2 and started and "kfg.runtime.step" in started[0]


def test_failed_trials_say_why_and_parallel_failures_of_one_step_all_land(tmp_path: Path) -> None:
    """Two trials failing the same step at once both keep its log under failed/ (one
    replacing the other), and each trial carries the step's error, not Optuna's traceback."""
    result = make(
        tmp_path,
        [
            ("code", "a = 1"),
            ("code", "raise ValueError(f'no good: {a}')\nscore = 1.0"),
        ],
        [{"name": "train", "cells": [2]}],
        parameters={"cell": 1},
        metrics=[{"name": "score", "variable": "score"}],
        tuning={
            "objective": {"metric": "score", "type": "maximize"},
            "algorithm": {"name": "random", "settings": {"random_state": 1}},
            "maxTrials": 4,
            "parallelTrials": 2,
            "parameters": {"a": {"type": "int", "min": 1, "max": 100}},
        },
    )
    assert result.ok, messages(result)
    assert result.pipeline and result.flow and result.notebook
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"))
    assert [t.state for t in summary.trials] == ["FAIL"] * 4
    for trial in summary.trials:
        assert trial.error is not None and "no good" in trial.error, trial
    assert (tmp_path / ".kfg" / "failed" / "train" / LOG).is_file()
    assert [p.name for p in (tmp_path / ".kfg" / "failed").iterdir()] == ["train"]
    assert summary.as_dict()["trials"][0]["error"] == summary.trials[0].error


def test_an_objective_that_is_not_finite_fails_its_trial_saying_so(tmp_path: Path) -> None:
    # As in the cluster, where Katib reads no such value (kfg.launcher.runs.printable).
    result = make(
        tmp_path,
        [
            ("code", "a = 1"),
            ("code", "score = [float(a), float('inf'), float('nan')][min(a, 3) - 1]"),
        ],
        [{"name": "train", "cells": [2]}],
        parameters={"cell": 1},
        metrics=[{"name": "score", "variable": "score"}],
        tuning={
            "objective": {"metric": "score", "type": "maximize"},
            "algorithm": {"name": "grid"},
            "maxTrials": 4,
            "parallelTrials": 1,
            "parameters": {"a": {"type": "int", "min": 1, "max": 4}},
        },
    )
    assert result.ok, messages(result)
    assert result.pipeline and result.flow and result.notebook
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"))
    outcome = {t.params["a"]: (t.state, t.error) for t in summary.trials}
    said = "objective metric `score` is {}, not a finite number: Katib would record no value"
    assert outcome == {
        1: ("COMPLETE", None),
        2: ("FAIL", said.format("inf") + " for this trial"),
        3: ("FAIL", said.format("nan") + " for this trial"),
        4: ("FAIL", said.format("nan") + " for this trial"),
    }
    assert summary.best is not None and summary.best.params == {"a": 1}
