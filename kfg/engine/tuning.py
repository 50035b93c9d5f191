"""`kfg tune`: the Katib search of `spec.tuning`, run locally with Optuna and the step cache.

Every trial is one `kfg run` of the pipeline with the trial's values, through the same
engine and cache, so steps that do not read a tuned parameter run once for the whole
study. The search space means what it means to Katib (int and double ranges with a step
and a uniform or log-uniform distribution, categorical and discrete lists), and Katib's
algorithm names map to Optuna samplers; an algorithm or distribution with no faithful
local equivalent is an error rather than a silent substitute. The study lives in SQLite
under the cache directory, so an interrupted tuning resumes where it stopped.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline, SearchSpace, Tuning
from kfg.engine.cache import Cache
from kfg.engine.runner import Engine, RunSummary
from kfg.names import content_hash
from kfg.notebook.reader import Notebook


class TuneError(Exception):
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


@dataclass
class TuneSummary:
    study: str
    metric: str
    direction: str
    trials: list[TrialResult] = field(default_factory=list)
    new_trials: int = 0
    plots: dict[str, str] = field(default_factory=dict)

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
                }
                for t in self.trials
            ],
            "plots": self.plots,
        }


def _grid_values(space: SearchSpace, parameter_type: str) -> list[Any]:
    if space.type in ("categorical", "discrete"):
        return list(space.values)
    assert space.min is not None and space.max is not None
    if space.type == "int":
        step = int(space.step or 1)
        return list(range(int(space.min), int(space.max) + 1, step))
    if space.step is None:
        raise TuneError(f"grid needs a `step` for double parameter `{space.name}`")
    count = math.floor((space.max - space.min) / space.step + 1e-9) + 1
    return [round(space.min + i * space.step, 12) for i in range(count)]


def sampler(tuning: Tuning, types: dict[str, str]) -> Any:
    """The Optuna sampler for a Katib algorithm name and its settings."""
    import optuna

    settings = dict(tuning.algorithm_settings)
    seed = settings.get("random_state")
    seed = int(seed) if seed is not None else None
    name = tuning.algorithm
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {s.name: _grid_values(s, types[s.name]) for s in tuning.parameters}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name in ("tpe", "multivariate-tpe"):
        options: dict[str, Any] = {"seed": seed, "multivariate": name == "multivariate-tpe"}
        if "n_startup_trials" in settings:
            options["n_startup_trials"] = int(settings["n_startup_trials"])
        if "n_ei_candidates" in settings:
            options["n_ei_candidates"] = int(settings["n_ei_candidates"])
        return optuna.samplers.TPESampler(**options)
    if name == "cmaes":
        cma: dict[str, Any] = {"seed": seed}
        if "sigma" in settings:
            cma["sigma0"] = float(settings["sigma"])
        if "restart_strategy" in settings:
            cma["restart_strategy"] = str(settings["restart_strategy"])
        return optuna.samplers.CmaEsSampler(**cma)
    if name == "sobol":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type="sobol", seed=seed)
    if name == "bayesianoptimization":
        try:
            import torch  # noqa: F401  (Optuna's Gaussian-process sampler needs it)
        except ImportError:
            raise TuneError(
                "bayesianoptimization runs locally with Optuna's Gaussian-process sampler,"
                " which needs PyTorch (pip install torch); or use tpe"
            ) from None
        return optuna.samplers.GPSampler(seed=seed)
    raise TuneError(
        f"`{name}` has no local equivalent: Katib's hyperband allocates a resource across"
        " brackets of trials, which a single local study does not model; use tpe or random"
        " locally and keep hyperband for the cluster"
    )


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
        value = trial.suggest_float(space.name, space.min, space.max, step=space.step, log=log)
        return int(value) if parameter_type == "int" else value
    choice = trial.suggest_categorical(space.name, list(space.values))
    if parameter_type == "bool" and isinstance(choice, str):
        return choice.lower() == "true"
    if parameter_type == "float" and isinstance(choice, int):
        return float(choice)
    return choice


def study_name(pipeline: Pipeline) -> str:
    """Changing the search (not just the trial count) starts a new study."""
    tuning = pipeline.tuning
    assert tuning is not None
    fixed = {
        "metric": tuning.metric,
        "type": tuning.goal_type,
        "algorithm": tuning.algorithm,
        "settings": tuning.algorithm_settings,
        "parameters": [vars(s) for s in tuning.parameters],
    }
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
) -> TuneSummary:
    import optuna

    tuning = pipeline.tuning
    if tuning is None:
        raise TuneError("kale.yaml has no spec.tuning")
    types = {p.name: p.type_name for p in pipeline.parameters}
    chosen = sampler(tuning, types)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache.root.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(cache.root / 'studies.db').resolve()}"
    name = study_name(pipeline)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=chosen,
        direction="maximize" if tuning.goal_type == "maximize" else "minimize",
        load_if_exists=True,
    )
    summary = TuneSummary(name, tuning.metric, tuning.goal_type)
    summary.trials = [_result(t) for t in study.trials if t.state.is_finished()]
    wanted = trials if trials is not None else tuning.max_trials
    remaining = max(0, wanted - sum(t.state == "COMPLETE" for t in summary.trials))
    lock = threading.Lock()
    failures = sum(t.state == "FAIL" for t in summary.trials)

    def objective(trial: Any) -> float:
        values = {s.name: suggest(trial, s, types[s.name]) for s in tuning.parameters}
        engine = Engine(pipeline, flow, notebook, cache, parameters=values, jobs=None)
        run: RunSummary = engine.run()
        trial.set_user_attr("executed", run.executed)
        trial.set_user_attr("metrics", run.metrics)
        trial.set_user_attr("seconds", run.seconds)
        if not run.ok or tuning.metric not in run.metrics:
            failed = next((s for s in run.steps if s.error), None)
            trial.set_user_attr("error", failed.error if failed else "no objective metric")
            raise RuntimeError(trial.user_attrs["error"])
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
            n_jobs=parallel or tuning.parallel_trials,
            callbacks=[after],
            catch=(RuntimeError,),
        )
    summary.trials.sort(key=lambda t: t.number)
    summary.plots = _plots(summary, cache.root / "tune" / name)
    return summary


def _result(trial: Any) -> TrialResult:
    state = trial.state.name
    return TrialResult(
        number=trial.number,
        state=state,
        params=dict(trial.params),
        value=trial.value if state == "COMPLETE" else None,
        metrics=dict(trial.user_attrs.get("metrics", {})),
        seconds=float(trial.user_attrs.get("seconds", 0.0)),
        executed=tuple(trial.user_attrs.get("executed", ())),
    )


def _plots(summary: TuneSummary, directory: Path) -> dict[str, str]:
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
