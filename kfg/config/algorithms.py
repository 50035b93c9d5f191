"""What Katib's services accept for each algorithm, read from Katib's source (`kfg.upstream.KATIB`).

Katib does not run the algorithms itself: its default katib-config
(`manifests/v1beta1/installs/katib-standalone/katib-config.yaml`) hands each algorithm name
to a suggestion service image, and each service validates the Experiment's
`algorithmSettings` in its own way when the Experiment starts. A setting one service
accepts, another rejects (hyperopt's `tpe` knows `n_EI_candidates`, Optuna's
`multivariate-tpe` knows `n_ei_candidates`), and a rejected setting fails the whole
Experiment on the cluster, long after the pull request merged. So kfg checks every setting
against the service that will run it, with that service's own parsing of the value (Python's
`int()` and `float()` in the Python services, Go's `strconv` in goptuna), and reports it as
an error on the line of the setting.

Every value reaches Katib as the string `setting_text` makes of it, so the checks read
exactly that string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

# The problem with a setting's value, in words, or None when the service accepts it.
Check = Callable[[str], str | None]


@dataclass(frozen=True)
class Service:
    """A Katib suggestion (or early-stopping) service, as deployed by the default katib-config."""

    name: str
    image: str  # the katib-config image, without registry and tag
    source: str  # where its validation lives in kubeflow/katib
    rejects_unknown: bool  # True: an unknown setting fails the Experiment; False: ignored
    role: str = "suggestion"  # or "early-stopping"
    # What a bad value does. The Python services answer ValidateAlgorithmSettings with
    # INVALID_ARGUMENT (or UNKNOWN, an uncaught exception), which Katib's suggestion
    # controller turns into a failed Suggestion and Experiment (suggestionclient.go:224-231).
    # goptuna answers INTERNAL, which that code lets through; its GetSuggestions then fails
    # on every reconcile, so no trial ever starts.
    failure: str = "rejects it, which fails the Experiment"


HYPEROPT = Service(
    "hyperopt", "suggestion-hyperopt", "pkg/suggestion/v1beta1/hyperopt/service.py", True
)
OPTUNA = Service("optuna", "suggestion-optuna", "pkg/suggestion/v1beta1/optuna/service.py", True)
SKOPT = Service("skopt", "suggestion-skopt", "pkg/suggestion/v1beta1/skopt/service.py", True)
GOPTUNA = Service(
    "goptuna",
    "suggestion-goptuna",
    "pkg/suggestion/v1beta1/goptuna/converter.go",
    False,
    failure="cannot build its sampler with it, so the Experiment never starts a trial",
)
HYPERBAND = Service(
    "hyperband", "suggestion-hyperband", "pkg/suggestion/v1beta1/hyperband/service.py", False
)
MEDIANSTOP = Service(
    "medianstop",
    "earlystopping-medianstop",
    "pkg/earlystopping/v1beta1/medianstop/service.py",
    True,
    "early-stopping",
)


def setting_text(value: str | int | float | bool) -> str:
    """The string Katib receives for a kale.yaml setting value (`algorithmSettings[].value`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _python_int(minimum: int) -> Check:
    """`int(value) >= minimum`, as the Python services write it (`int("4.0")` fails)."""

    def check(text: str) -> str | None:
        try:
            number = int(text)
        except ValueError:
            return f"must be a whole number, not `{text}` (the service reads it with int())"
        if number < minimum:
            return f"must be at least {minimum}, not {number}"
        return None

    return check


def _python_float(*, above: float, below: float | None = None) -> Check:
    """`above < float(value) < below`; NaN fails every comparison, as in the service."""

    def check(text: str) -> str | None:
        try:
            number = float(text)
        except ValueError:
            return f"must be a number, not `{text}`"
        if below is not None and not below > number > above:
            return f"must lie strictly between {above:g} and {below:g}, not {text}"
        if not number > above:
            return f"must be greater than {above:g}, not {text}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(text: str) -> str | None:
        if text in choices:
            return None
        near = [c for c in choices if c.lower() == text.lower()]
        hint = f" (did you mean `{near[0]}`?)" if near else ""
        return f"must be one of {', '.join(choices)}, not `{text}`{hint}"

    return check


_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
    r"|(?i:inf|infinity|nan))"
)


def _go_atoi(text: str) -> str | None:
    """Go's `strconv.Atoi` on a 64-bit platform: ASCII digits, an optional sign, int64 range."""
    if _GO_INT.fullmatch(text) and -(2**63) <= int(text) < 2**63:
        return None
    return f"must be a whole number, not `{text}` (goptuna reads it with Go's strconv.Atoi)"


def _go_parse_float(text: str) -> str | None:
    """Go's `strconv.ParseFloat(text, 64)`: decimal or hex, inf and nan; out of range fails."""
    if _GO_FLOAT.fullmatch(text):
        value = float.fromhex(text) if "x" in text.lower() else float(text)
        if not math.isinf(value) or "inf" in text.lower():
            return None
    return f"must be a number, not `{text}` (goptuna reads it with Go's strconv.ParseFloat)"


def _ignored(text: str) -> str | None:
    return None


@dataclass(frozen=True)
class Algorithm:
    name: str
    service: Service
    settings: dict[str, Check]  # what the service reads, with its check of the value

    def describe(self) -> str:
        service = self.service
        if service.name == self.name:
            return f"Katib's `{self.name}` {service.role} service"
        return f"Katib's `{self.name}` (its {service.name} {service.role} service)"


# kubeflow/katib v0.19.0: which service runs each algorithm (katib-config.yaml, `suggestions`),
# and what each accepts (the `source` of each service, lines cited per entry).
ALGORITHMS: dict[str, Algorithm] = {
    # hyperopt/service.py:127-143 (_validate_random_setting)
    "random": Algorithm("random", HYPEROPT, {"random_state": _python_int(0)}),
    # hyperopt/service.py:102-125 (_validate_tpe_setting)
    "tpe": Algorithm(
        "tpe",
        HYPEROPT,
        {
            "gamma": _python_float(above=0, below=1),
            "prior_weight": _python_float(above=0),
            "n_EI_candidates": _python_int(1),
            "random_state": _python_int(0),
        },
    ),
    # optuna/service.py:138-159 (_validate_tpe_setting)
    "multivariate-tpe": Algorithm(
        "multivariate-tpe",
        OPTUNA,
        {
            "n_startup_trials": _python_int(0),
            "n_ei_candidates": _python_int(0),
            "random_state": _python_int(0),
        },
    ),
    # optuna/service.py:220-236 (_validate_grid_setting); its search-space rule is in checks
    "grid": Algorithm("grid", OPTUNA, {"random_state": _python_int(0)}),
    # skopt/service.py:116-165 (_validate_bayesianoptimization_setting)
    "bayesianoptimization": Algorithm(
        "bayesianoptimization",
        SKOPT,
        {
            "base_estimator": _one_of("GP", "RF", "ET", "GBRT"),
            "n_initial_points": _python_int(0),
            "acq_func": _one_of("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps"),
            "acq_optimizer": _one_of("auto", "sampling", "lbfgs"),
            "random_state": _python_int(0),
        },
    ),
    # goptuna/converter.go:38-68 (toGoptunaSampler, cmaes); other names are never read
    "cmaes": Algorithm(
        "cmaes",
        GOPTUNA,
        {
            "random_state": _go_atoi,
            "sigma": _go_parse_float,
            "restart_strategy": _one_of("ipop", "bipop", "none"),
        },
    ),
    # goptuna/converter.go:93-94: the sobol sampler is built without reading any setting
    "sobol": Algorithm("sobol", GOPTUNA, {}),
    # hyperband/service.py:251-297 (ValidateAlgorithmSettings) and 343-370 (convert); the
    # rules that involve the search space and the counts are in checks
    "hyperband": Algorithm(
        "hyperband",
        HYPERBAND,
        {"resource_name": _ignored, "r_l": _ignored, "eta": _ignored},
    ),
}

# hyperband/service.py:343-370: names HyperBandParam.convert also reads, which are the
# algorithm's own bookkeeping between suggestions; setting them overrides its state.
HYPERBAND_STATE = frozenset(
    {"s_max", "b_l", "n", "r", "current_s", "current_i", "evaluating_trials"}
)

# medianstop/service.py:92-118 (validate_medianstop_setting)
EARLY_STOPPING: dict[str, Algorithm] = {
    "medianstop": Algorithm(
        "medianstop",
        MEDIANSTOP,
        {"min_trials_required": _python_int(1), "start_step": _python_int(1)},
    ),
}


def accepting(setting: str) -> list[str]:
    """The algorithms whose service accepts `setting`, for a hint when another one does not."""
    return [a.name for a in ALGORITHMS.values() if setting in a.settings]


# The most points a grid may have: kfg tune and Katib's suggestion service both list every
# point (search_space.py convert_to_combinations builds each axis as a list), so a grid of
# billions hangs either before the first trial.
GRID_MAX = 1_000_000


def grid_size(
    kind: str,
    low: float | None,
    high: float | None,
    step: float | None,
    values: tuple[str | int | float | bool, ...] | list[str | int | float | bool],
) -> int | None:
    """How many values `grid_axis` gives, computed without listing them."""
    if kind in ("categorical", "discrete"):
        return len(values)
    assert low is not None and high is not None
    if kind == "int":
        return max(0, (int(high) - int(low)) // int(step or 1) + 1)
    if not step:
        return None
    start, stop = float(low), float(high) + float(step)
    count = max(0, math.ceil((stop - start) / float(step)))
    delta = (start + float(step)) - start
    if count and start + (count - 1) * delta > float(high):
        count -= 1
    return count


def grid_axis(
    kind: str,
    low: float | None,
    high: float | None,
    step: float | None,
    values: tuple[str | int | float | bool, ...] | list[str | int | float | bool],
) -> list[str | int | float | bool] | None:
    """The values Katib's grid tries for one parameter; None when a double has no step.

    kubeflow/katib v0.19.0 pkg/suggestion/v1beta1/internal/search_space.py:49-74
    (convert_to_combinations): an int range with step 1 by default, a double as numpy's
    `arange(min, max + step, step)` without a last value beyond max, lists as given.
    """
    if kind in ("categorical", "discrete"):
        return list(values)
    assert low is not None and high is not None
    if kind == "int":
        return list(range(int(low), int(high) + 1, int(step or 1)))
    if not step:
        return None
    start, stop = float(low), float(high) + float(step)
    count = max(0, math.ceil((stop - start) / float(step)))
    delta = (start + float(step)) - start  # numpy fills arange with start + i * delta
    axis: list[str | int | float | bool] = [start + i * delta for i in range(count)]
    if axis and float(axis[-1]) > float(high):
        axis.pop()
    return axis
