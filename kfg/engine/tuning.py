"""`kfg tune`: the Katib search of `spec.tuning`, run locally with Optuna and the step cache.

Every trial is one `kfg run` of the pipeline with the trial's values, through the same
engine and cache, so steps that do not read a tuned parameter run once for the whole
study. The search space means what it means to Katib (int and double ranges with a step
and a uniform or log-uniform distribution, categorical and discrete lists), and each Katib
algorithm becomes the Optuna sampler configured as the Katib service that runs it would be,
setting by setting (`LOCAL_SETTINGS`). A setting without a faithful local equivalent runs
with the closest option and a warning (`local_notes`); an algorithm or distribution with
none is an error rather than a silent substitute. Each study lives in its own append-only
journal under the cache directory (`studies/NAME.journal`, Optuna's JournalStorage on a
file), so an interrupted tuning resumes where it stopped; it replaces SQLite, whose
database set-up alone cost more than a second per `kfg tune`, and a study an older kfg
stored in one shared journal or in SQLite is copied the first time it is resumed. Plots cost more
than a second of matplotlib and are drawn only when asked for (`plots=True`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sqlite3
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.analysis.dataflow import Flow
from kfg.config.algorithms import grid_axis, setting_text
from kfg.config.model import Pipeline, SearchSpace, Tuning
from kfg.engine.cache import Cache
from kfg.engine.runner import (
    Engine,
    RunSummary,
    preload_modules,
    step_slots,
    step_threads,
    warm_up,
)
from kfg.errors import KfgError
from kfg.kube.names import content_hash
from kfg.notebook.reader import Notebook


class TuneError(KfgError):
    """The tuning spec cannot be run locally as written; the message says why."""


@dataclass(frozen=True)
class TrialResult:
    number: int
    state: str  # COMPLETE, FAIL
    params: dict[str, Any]
    value: float | None
    metrics: dict[str, float]
    seconds: float
    executed: tuple[str, ...] = ()
    error: str | None = None  # why a failed trial failed, in the step's words


@dataclass
class TuneSummary:
    study: str
    metric: str
    direction: str
    trials: list[TrialResult] = field(default_factory=list)
    new_trials: int = 0
    plots: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # where the local study differs from Katib
    finished: str | None = None  # why nothing ran: the study is complete, and how to extend it

    @property
    def best(self) -> TrialResult | None:
        done = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t.value or 0.0)

    def as_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "study": self.study,
            "metric": self.metric,
            "direction": self.direction,
            "new_trials": self.new_trials,
            "best": None
            if best is None
            else {"trial": best.number, "value": best.value, "params": best.params},
            "trials": [
                {
                    "number": t.number,
                    "state": t.state,
                    "value": t.value,
                    "params": t.params,
                    "metrics": t.metrics,
                    "seconds": round(t.seconds, 3),
                    "executed_steps": list(t.executed),
                    "error": t.error,
                }
                for t in self.trials
            ],
            "plots": self.plots,
            "notes": self.notes,
            "finished": self.finished,
        }


def _grid_values(space: SearchSpace) -> list[Any]:
    """The points Katib's grid tries for one parameter (kfg.config.algorithms.grid_axis)."""
    axis = grid_axis(space.type, space.min, space.max, space.step, space.values)
    if axis is None:
        raise TuneError(f"grid needs a `step` for double parameter `{space.name}`")
    if space.type == "double":
        return [round(float(v), 12) for v in axis]  # 0.30000000000000004 is 0.3 to a reader
    return axis


@dataclass(frozen=True)
class LocalSetting:
    """How `kfg tune` runs one Katib algorithm setting on Optuna."""

    optuna: str  # the Optuna option it becomes
    faithful: bool  # the same quantity with the same meaning; otherwise kfg warns
    why: str  # what Katib's service does with it, and where the two differ


# Setting by setting, what each algorithm's settings mean in Katib v0.19.0 (read in the
# service that runs the algorithm, see kfg.config.algorithms) and in the local Optuna study.
# A setting that is not `faithful` still runs, and `kfg tune` says how it differs.
LOCAL_SETTINGS: dict[tuple[str, str], LocalSetting] = {
    ("random", "random_state"): LocalSetting(
        "RandomSampler(seed)", True, "seeds the sampler (the random streams differ)"
    ),
    ("tpe", "gamma"): LocalSetting(
        "TPESampler(gamma=n -> min(ceil(gamma * sqrt(n)), 25))",
        True,
        "hyperopt 0.2.5 tpe.py:639 splits the best ceil(gamma * sqrt(n)) of n trials, at most"
        " 25, from the rest; Optuna's gamma is that function",
    ),
    ("tpe", "prior_weight"): LocalSetting(
        "TPESampler(prior_weight)", True, "the weight of the prior in both Parzen estimators"
    ),
    ("tpe", "n_EI_candidates"): LocalSetting(
        "TPESampler(n_ei_candidates)", True, "candidates drawn to maximise expected improvement"
    ),
    ("tpe", "random_state"): LocalSetting(
        "TPESampler(seed)", True, "seeds the sampler (the random streams differ)"
    ),
    ("multivariate-tpe", "n_startup_trials"): LocalSetting(
        "TPESampler(n_startup_trials)", True, "random trials before TPE starts"
    ),
    ("multivariate-tpe", "n_ei_candidates"): LocalSetting(
        "TPESampler(n_ei_candidates)", True, "candidates drawn to maximise expected improvement"
    ),
    ("multivariate-tpe", "random_state"): LocalSetting(
        "TPESampler(seed)", True, "Katib's optuna service passes it as the seed, as kfg does"
    ),
    ("grid", "random_state"): LocalSetting(
        "GridSampler(seed)", True, "the order in which the grid is walked"
    ),
    ("cmaes", "random_state"): LocalSetting(
        "CmaEsSampler(seed)", True, "seeds CMA-ES (the random streams differ)"
    ),
    ("cmaes", "sigma"): LocalSetting(
        "CmaEsSampler(sigma0=sigma / smallest range)",
        False,
        "goptuna measures the initial step size in the parameters' own units, Optuna"
        " relative to each parameter's range; the two agree only for the narrowest parameter",
    ),
    ("cmaes", "restart_strategy"): LocalSetting(
        "none (Optuna 4.4 dropped CMA-ES restarts)",
        False,
        "goptuna restarts CMA-ES with a doubled population (ipop, bipop); Optuna no longer"
        " restarts, so the local search runs without restarts",
    ),
    ("bayesianoptimization", "base_estimator"): LocalSetting(
        "GPSampler (a Gaussian process)",
        False,
        "skopt's GP is Optuna's GPSampler; RF, ET and GBRT surrogates have no Optuna"
        " equivalent, so a Gaussian process is used",
    ),
    ("bayesianoptimization", "n_initial_points"): LocalSetting(
        "GPSampler(n_startup_trials)", True, "random trials before the surrogate is fitted"
    ),
    ("bayesianoptimization", "acq_func"): LocalSetting(
        "log expected improvement (GPSampler's only acquisition)",
        False,
        "EI matches; gp_hedge, LCB, PI, EIps and PIps have no Optuna equivalent",
    ),
    ("bayesianoptimization", "acq_optimizer"): LocalSetting(
        "none", False, "GPSampler optimises its acquisition function its own way"
    ),
    ("bayesianoptimization", "random_state"): LocalSetting(
        "GPSampler(seed)", True, "seeds the sampler (the random streams differ)"
    ),
}
# Faithful whichever value: the same option with the same meaning.
_FAITHFUL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("cmaes", "restart_strategy"): frozenset({"none"}),
    ("bayesianoptimization", "base_estimator"): frozenset({"GP"}),
    ("bayesianoptimization", "acq_func"): frozenset({"EI"}),
}
HYPEROPT_GAMMA = 0.25  # hyperopt 0.2.5 tpe.py:796, Katib's default for tpe
HYPEROPT_GAMMA_CAP = 25  # hyperopt 0.2.5 tpe.py:36 (DEFAULT_LF), the cap on the best trials


def local_notes(tuning: Tuning) -> list[str]:
    """What the local study does differently from Katib, one sentence per setting."""
    notes = []
    for name, value in tuning.algorithm_settings.items():
        text = setting_text(value)
        local = LOCAL_SETTINGS.get((tuning.algorithm, name))
        if local is None:
            notes.append(
                f"`{name}` has no meaning for Katib's {tuning.algorithm} and is ignored here too"
            )
        elif not local.faithful and text not in _FAITHFUL_VALUES.get(
            (tuning.algorithm, name), frozenset()
        ):
            notes.append(f"`{name}: {text}` runs as {local.optuna} locally: {local.why}")
    if tuning.early_stopping:
        notes.append(
            f"early stopping ({tuning.early_stopping}) is not applied locally: a local trial"
            " reports its metrics once, when its steps finish"
        )
    return notes


def _hyperopt_gamma(gamma: float, n: int) -> int:
    """How many of `n` trials hyperopt's TPE counts as good (tpe.py:639, ap_split_trials)."""
    return min(math.ceil(gamma * math.sqrt(n)), HYPEROPT_GAMMA_CAP)


def sampler(tuning: Tuning, types: dict[str, str], parallel: int | None = None) -> Any:
    """The Optuna sampler that runs the Katib algorithm as its service would.

    `parallel` is how many trials start at once; Katib's tpe makes its first batch random
    (hyperopt/base_service.py:286-300 passes n_startup_jobs=current_request_number).
    """
    import optuna

    settings = {k: setting_text(v) for k, v in tuning.algorithm_settings.items()}
    seed = int(settings["random_state"]) if "random_state" in settings else None
    name = tuning.algorithm
    if name == "random":
        return optuna.samplers.RandomSampler() if seed is None else _seeded_random(seed)
    if name == "grid":
        grid = {s.name: _grid_values(s) for s in tuning.parameters}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "tpe":
        gamma = float(settings.get("gamma", HYPEROPT_GAMMA))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # gamma, prior_weight: Optuna 4.9+
            return optuna.samplers.TPESampler(
                n_startup_trials=parallel or tuning.parallel_trials,
                n_ei_candidates=int(settings.get("n_EI_candidates", 24)),
                prior_weight=float(settings.get("prior_weight", 1.0)),
                gamma=functools.partial(_hyperopt_gamma, gamma),
                seed=seed,
                multivariate=False,
                constant_liar=False,
            )
    if name == "multivariate-tpe":
        # optuna/service.py:79-85, 113-116: Katib's optuna service adds both options.
        return optuna.samplers.TPESampler(
            n_startup_trials=int(settings.get("n_startup_trials", 10)),
            n_ei_candidates=int(settings.get("n_ei_candidates", 24)),
            seed=seed,
            multivariate=True,
            constant_liar=True,
        )
    if name == "cmaes":
        # goptuna/converter.go:42: no random start-up trials.
        cma: dict[str, Any] = {"seed": seed, "n_startup_trials": 0}
        if "sigma" in settings:
            ranges = [
                float(s.max) - float(s.min)
                for s in tuning.parameters
                if s.type in ("int", "double") and s.min is not None and s.max is not None
            ]
            cma["sigma0"] = float(settings["sigma"]) / (min(ranges) if ranges else 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # sigma0: Optuna 4.9+
            return optuna.samplers.CmaEsSampler(**cma)
    if name == "sobol":
        # goptuna/converter.go:93-94: an unscrambled Sobol sequence, no setting read.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=False)
    if name == "bayesianoptimization":
        try:
            import torch  # noqa: F401  (Optuna's Gaussian-process sampler needs it)
        except ImportError:
            raise TuneError(
                "bayesianoptimization runs locally with Optuna's Gaussian-process sampler,"
                " which needs PyTorch (pip install torch); or use tpe"
            ) from None
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=int(settings.get("n_initial_points", 10))
        )
    raise TuneError(
        f"`{name}` has no local equivalent: Katib's hyperband allocates a resource across"
        " brackets of trials, which a single local study does not model; use tpe or random"
        " locally and keep hyperband for the cluster"
    )


def _seeded_random(seed: int) -> Any:
    """A random sampler whose trial N draws the same values however the trials interleave.

    `random_state` is there to make a search repeatable, but Optuna reseeds a sampler from
    the OS in each thread of a parallel study (optuna 5.0.0, optuna/study/_optimize.py:
    `_optimize_sequential` calls `reseed_rng` when n_jobs != 1), and even without that the
    threads would take turns drawing from one generator in whatever order they ran. Here
    each value comes from a generator seeded by the seed, the trial's number and the
    parameter's name, so two runs of the same study draw the same trials, one at a time
    or `parallelTrials` at once, and a resumed study goes on as an uninterrupted one would.
    """
    import optuna

    class Seeded(optuna.samplers.RandomSampler):
        def reseed_rng(self) -> None:
            """Nothing to reseed: every draw seeds its own generator."""

        def sample_independent(
            self, study: Any, trial: Any, param_name: str, param_distribution: Any
        ) -> Any:
            drawn = content_hash({"seed": seed, "trial": trial.number, "name": param_name})
            one = optuna.samplers.RandomSampler(seed=int(drawn, 16) % 2**32)
            return one.sample_independent(study, trial, param_name, param_distribution)

    return Seeded(seed=seed)


def suggest(trial: Any, space: SearchSpace, parameter_type: str) -> Any:
    """A value for one parameter, with Katib's search-space semantics."""
    distribution = space.distribution or "uniform"
    if distribution not in ("uniform", "logUniform"):
        raise TuneError(
            f"parameter `{space.name}`: the `{distribution}` distribution has no local"
            " equivalent in Optuna; use uniform or logUniform"
        )
    log = distribution == "logUniform"
    if space.type == "int":
        assert space.min is not None and space.max is not None
        step = int(space.step or 1)
        return trial.suggest_int(space.name, int(space.min), int(space.max), step=step, log=log)
    if space.type == "double":
        assert space.min is not None and space.max is not None
        if parameter_type == "int":
            # `kfg trial` refuses 123.4 for an int parameter; so does the local engine.
            raise TuneError(
                f"parameter `{space.name}` is an int but its search space is `double`;"
                " use `type: int`, or make the default a float"
            )
        return trial.suggest_float(space.name, space.min, space.max, step=space.step, log=log)
    choice = trial.suggest_categorical(space.name, list(space.values))
    if parameter_type == "int" and isinstance(choice, float):
        if not choice.is_integer():
            raise TuneError(
                f"parameter `{space.name}` is an int but the search space tries {choice!r},"
                " which is not a whole number"
            )
        return int(choice)
    if parameter_type == "bool" and isinstance(choice, str):
        return choice.lower() == "true"
    if parameter_type == "float" and isinstance(choice, int):
        return float(choice)
    return choice


def study_name(pipeline: Pipeline, notebook: Notebook) -> str:
    """Changing the search (not just the trial count) starts a new study, and so does
    changing what a trial computes: the code of the prelude and the steps, or the value of
    a parameter that is not tuned. Trials of different code are not comparable, and Katib
    gets a new Experiment then too (its trials run a new pipeline version)."""
    tuning = pipeline.tuning
    assert tuning is not None
    tuned = {s.name for s in tuning.parameters}
    fixed = {
        "metric": tuning.metric,
        "type": tuning.goal_type,
        "algorithm": tuning.algorithm,
        "settings": tuning.algorithm_settings,
        "parameters": [vars(s) for s in tuning.parameters],
        "code": {
            "prelude": [notebook.cell(c).source for c in pipeline.prelude],
            "steps": [[s.name, [notebook.cell(c).source for c in s.cells]] for s in pipeline.steps],
            "defaults": {p.name: p.default for p in pipeline.parameters if p.name not in tuned},
        },
    }
    if tuning.revision is not None:  # bumping it starts afresh, as in the cluster
        fixed["revision"] = str(tuning.revision)
    return f"{pipeline.name}-{content_hash(fixed)}"


Listener = Callable[[TrialResult, TuneSummary], None]


def tune(
    pipeline: Pipeline,
    flow: Flow,
    notebook: Notebook,
    cache: Cache,
    *,
    trials: int | None = None,
    parallel: int | None = None,
    listener: Listener | None = None,
    plots: bool = False,
) -> TuneSummary:
    tuning = pipeline.tuning
    if tuning is None:
        raise TuneError("kale.yaml has no spec.tuning")
    # Trials will run steps (almost always: a study that is already finished is the
    # exception, and pays only a background import). The forkserver imports the prelude
    # while Optuna is imported and the study is read.
    at_once = parallel or tuning.parallel_trials
    threads = step_threads(pipeline, flow, step_slots(None), at_once)
    warm_up(preload_modules(pipeline, notebook), pipeline.source, threads, "tune")
    import optuna

    types = {p.name: p.type_name for p in pipeline.parameters}
    chosen = sampler(tuning, types, at_once)
    # Optuna logs every failed trial with the objective's traceback; kfg reports the step's
    # own error with the trial instead, and keeps Optuna's errors.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = study_name(pipeline, notebook)
    study = optuna.create_study(
        storage=study_storage(cache, name),
        study_name=name,
        sampler=chosen,
        direction="maximize" if tuning.goal_type == "maximize" else "minimize",
        load_if_exists=True,
    )
    summary = TuneSummary(name, tuning.metric, tuning.goal_type, notes=local_notes(tuning))
    summary.trials = [_result(t) for t in study.trials if t.state.is_finished()]
    wanted = trials if trials is not None else tuning.max_trials
    completed = sum(t.state == "COMPLETE" for t in summary.trials)
    remaining = max(0, wanted - completed)
    if tuning.algorithm == "grid":
        points = _untried_grid(study, tuning)
        untried = len(points)
        study.sampler = _grid_queue(points[:remaining])
        if not untried:
            summary.finished = (
                f"study {name} is finished: all {len(summary.trials)} grid points are tried;"
                " to search further, change the grid (min, max, step or values) or bump"
                " spec.tuning.revision to start afresh"
            )
        remaining = min(remaining, untried)
    if remaining == 0 and summary.finished is None:
        summary.finished = (
            f"study {name} is finished: {completed} of {wanted} trials completed; to run"
            f" more, pass `--trials {wanted + tuning.parallel_trials}` or raise"
            " spec.tuning.maxTrials (finished trials are kept), or bump spec.tuning.revision"
            " to start afresh"
        )
    lock = threading.Lock()
    failures = sum(t.state == "FAIL" for t in summary.trials)

    def objective(trial: Any) -> float:
        values = {s.name: suggest(trial, s, types[s.name]) for s in tuning.parameters}
        engine = Engine(
            pipeline,
            flow,
            notebook,
            cache,
            parameters=values,
            jobs=None,
            sharing=at_once,
            command="tune",
        )
        run: RunSummary = engine.run()
        record: dict[str, Any] = {
            "executed": run.executed,
            "metrics": run.metrics,
            "seconds": run.seconds,
        }
        if not run.ok or tuning.metric not in run.metrics:
            failed = next((s for s in run.steps if s.error), None)
            record["error"] = failed.error if failed else "no objective metric"
        elif not math.isfinite(run.metrics[tuning.metric]):
            # Katib reads no value that is not finite (kfg.launcher.runs.printable), so such
            # a trial has no result in the cluster; Optuna would rank inf first, and fail
            # NaN saying why only in the log kfg silences.
            record["error"] = (
                f"objective metric `{tuning.metric}` is {run.metrics[tuning.metric]}, not a"
                " finite number: Katib would record no value for this trial"
            )
        trial.set_user_attr(RECORD, record)  # one write to the journal per trial
        if "error" in record:
            raise RuntimeError(record["error"])
        return run.metrics[tuning.metric]

    def after(study: Any, trial: Any) -> None:
        nonlocal failures
        result = _result(trial)
        with lock:
            summary.trials.append(result)
            summary.new_trials += 1
            if result.state == "FAIL":
                failures += 1
            if listener is not None:
                listener(result, summary)
            if failures > tuning.max_failed_trials:
                study.stop()
            reached = (
                tuning.goal is not None
                and result.value is not None
                and (
                    result.value >= tuning.goal
                    if tuning.goal_type == "maximize"
                    else result.value <= tuning.goal
                )
            )
            if reached:
                study.stop()

    if remaining:
        study.optimize(
            objective,
            n_trials=remaining,
            n_jobs=at_once,
            callbacks=[after],
            catch=(RuntimeError,),
        )
    summary.trials.sort(key=lambda t: t.number)
    if plots:
        summary.plots = draw_plots(summary, cache.root / "tune" / name)
    return summary


STUDIES = "studies"  # a journal per study: studies/NAME.journal
SHARED_STUDIES = "studies.journal"  # kfg before that: every study in one journal
LEGACY_STUDIES = "studies.db"  # kfg before the journal: SQLite through SQLAlchemy
RECORD = "kfg"  # the user attribute holding what a trial's run did


def study_storage(cache: Cache, name: str) -> Any:
    """The journal of study `name`, with the study in it if an older kfg's store had it.

    A journal is a file of appended operations, and opening one replays all of it (0.1 s
    for 30 studies of 32 trials here), so each study has its own: a `kfg tune` reads its own
    study's history, not every search the cache ever ran, and concurrent tunes of different
    studies do not take turns on one lock. SQLite through SQLAlchemy and alembic, before the
    journal, checked its schema first (more than a second). A study an older kfg kept in the
    shared journal (`studies.journal`) or in SQLite (`studies.db`) is copied on first use, so
    it still resumes; the old store is left as it was (an older kfg can still read it) and
    is not written again.
    """
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    folder = cache.root / STUDIES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    try:
        storage.get_study_id_from_name(name)
        return storage
    except KeyError:
        pass
    shared = cache.root / SHARED_STUDIES
    legacy = cache.root / LEGACY_STUDIES
    older: Any = None
    if _in_journal(shared, name):
        older, source = JournalStorage(JournalFileBackend(str(shared))), shared
    elif legacy.is_file() and _in_sqlite(legacy, name):
        older, source = f"sqlite:///{legacy.resolve()}", legacy
    if older is None:
        return storage
    import optuna

    try:
        optuna.copy_study(from_study_name=name, from_storage=older, to_storage=storage)
    except optuna.exceptions.DuplicatedStudyError:
        return storage  # a concurrent `kfg tune` copied it first
    except KeyError:
        return storage  # the name was there, the study was not (a deleted study)
    cache.warn(
        f"kfg: study {name} was copied from {source} to {path}, where kfg keeps studies"
        " now; it resumes from there"
    )
    return storage


def _in_journal(path: Path, name: str) -> bool:
    """Whether the shared journal an older kfg wrote may hold study `name`, by its text
    alone: replaying a journal of many studies is what this layout avoids."""
    try:
        with path.open("rb") as handle:
            text = handle.read()
    except OSError:
        return False
    return json.dumps(name).encode("utf-8") in text


def _in_sqlite(path: Path, name: str) -> bool:
    """Whether kfg's old SQLite store holds study `name`, read without SQLAlchemy."""
    try:
        uri = path.resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            row = db.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchone()
    except sqlite3.Error:
        return False  # not an Optuna database: nothing of kfg's to carry over
    return row is not None


def _point(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def _untried_grid(study: Any, tuning: Tuning) -> list[dict[str, Any]]:
    """The grid points, in Katib's order, that no finished trial of the study has tried."""
    import itertools

    names = [s.name for s in tuning.parameters]
    axes = [_grid_values(s) for s in tuning.parameters]
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]
    tried = {_point(t.params) for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    return [p for p in grid if _point(p) not in tried]


def _grid_queue(points: list[dict[str, Any]]) -> Any:
    """A sampler that hands each trial the next untried grid point, once.

    Optuna's GridSampler draws at random among the points it believes unvisited, so
    parallel workers, and a study resumed past the end of its grid, evaluate points twice;
    its enqueued trials are popped from SQLite without a row lock, so two threads can take
    the same one. Here the points are handed out under a lock, in Katib's grid order.
    """
    import optuna

    class GridQueue(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.points = list(points)
            self.assigned: dict[int, dict[str, Any]] = {}
            self.lock = threading.Lock()

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return {}

        def sample_relative(self, study: Any, trial: Any, space: Any) -> dict[str, Any]:
            return {}

        def before_trial(self, study: Any, trial: Any) -> None:
            with self.lock:
                if not self.points:
                    raise TuneError("every grid point is taken")  # n_trials prevents it
                self.assigned[trial.number] = self.points.pop(0)

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            with self.lock:
                return self.assigned[trial.number][name]

    return GridQueue()


def _result(trial: Any) -> TrialResult:
    state = trial.state.name
    # Studies stored before RECORD kept each field in its own user attribute.
    record = trial.user_attrs.get(RECORD, trial.user_attrs)
    return TrialResult(
        number=trial.number,
        state=state,
        params=dict(trial.params),
        value=trial.value if state == "COMPLETE" else None,
        metrics=dict(record.get("metrics", {})),
        seconds=float(record.get("seconds", 0.0)),
        executed=tuple(record.get("executed", ())),
        error=record.get("error") if state == "FAIL" else None,
    )


def draw_plots(summary: TuneSummary, directory: Path) -> dict[str, str]:
    """The objective over trials and against each parameter, as PNG and one HTML page."""
    import base64
    import html
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in summary.trials if t.value is not None]
    if not done:
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted({p for t in done for p in t.params})
    figure, axes = plt.subplots(1, 1 + len(names), figsize=(4 * (1 + len(names)), 3.2))
    axes = list(axes) if len(names) else [axes]
    best_so_far: list[float] = []
    for trial in done:
        value = trial.value or 0.0
        previous = best_so_far[-1] if best_so_far else value
        pick = max if summary.direction == "maximize" else min
        best_so_far.append(pick(previous, value))
    axes[0].plot([t.number for t in done], [t.value for t in done], "o", label="trial")
    axes[0].plot([t.number for t in done], best_so_far, "-", label="best so far")
    axes[0].set_xlabel("trial")
    axes[0].set_ylabel(summary.metric)
    axes[0].legend()
    for axis, name in zip(axes[1:], names, strict=True):
        points = [(t.params[name], t.value) for t in done if name in t.params]
        axis.plot([p[0] for p in points], [p[1] for p in points], "o")
        axis.set_xlabel(name)
    figure.tight_layout()
    png = directory / "tuning.png"
    figure.savefig(png)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    rows = "".join(
        f"<tr><td>{t.number}</td><td>{t.state}</td><td>{'' if t.value is None else t.value}</td>"
        f"<td>{html.escape(str(t.params))}</td></tr>"
        for t in summary.trials
    )
    page = directory / "tuning.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(summary.study)}</title></head><body>"
        f"<h1>{html.escape(summary.study)}: {summary.direction} {html.escape(summary.metric)}</h1>"
        f"<img src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"
        "<table><tr><th>trial</th><th>state</th><th>value</th><th>parameters</th></tr>"
        f"{rows}</table></body></html>\n",
        encoding="utf-8",
    )
    return {"png": str(png), "html": str(page)}
