"""How many threads a step's numeric libraries get when kfg runs steps side by side.

NumPy's OpenBLAS, scikit-learn's OpenMP and MKL each start a pool of one thread per core in
every process. Two trials of two steps at once on two cores then run eight busy threads on
two cores, and each step is slower than with a pool of its fair share: on examples/wine,
`kfg tune --trials 8` took 1.97 s with the default pools and 1.87 s with one thread each
(benchmarks/local_engine.py, five alternating pairs). Process pools that run numeric work
side by side cap their workers the same way: joblib's loky gives each worker
`cpu_count() // n_jobs` threads, and Dask's nanny and Ray's workers set OMP_NUM_THREADS.

The cap is an engine decision for this machine only: in the cluster every step is a pod
with its own CPU request, and nothing here reaches the rendered manifests or the cache key.
A user who sets any of the variables below has chosen for themselves, and kfg sets none.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping

# The variables the common native thread pools read when they load (the list loky sets in
# its workers): OpenMP, OpenBLAS, MKL, BLIS, Apple Accelerate, Numba, NumExpr.
VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def cores() -> int:
    """The CPUs this process may run on (an affinity mask or a container's cpuset counts)."""
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def per_step(at_once: int, env: Mapping[str, str] | None = None) -> int | None:
    """The threads each step's pools get when `at_once` steps may run together, or None to
    leave the libraries' defaults (one step at a time, or the user chose)."""
    env = os.environ if env is None else env
    if any(env.get(name) for name in VARIABLES):
        return None
    if at_once <= 1:
        return None
    return max(1, cores() // at_once)


def width(upstream: Mapping[str, Iterable[str]]) -> int:
    """The most steps of a DAG that can run at the same time: its largest set of steps none
    of which waits for another (an antichain).

    By Dilworth's theorem that is the number of steps minus a maximum matching between
    each step and the steps that wait for it, directly or not. `upstream` lists every step
    in a topological order, with the steps it waits for. The steps each one reaches are
    kept as bit masks and walked lazily, so a chain of thousands of steps costs little.
    """
    index = {name: i for i, name in enumerate(upstream)}
    children: list[list[int]] = [[] for _ in index]
    for name, sources in upstream.items():
        for source in sources:
            if source in index:
                children[index[source]].append(index[name])
    reaches = [0] * len(index)
    for i in reversed(range(len(index))):
        for child in children[i]:
            reaches[i] |= (1 << child) | reaches[child]
    matched: dict[int, int] = {}  # a later step -> the earlier step matched to it
    for start in range(len(index)):
        _augment(start, reaches, matched)
    return len(index) - len(matched)


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _augment(start: int, reaches: list[int], matched: dict[int, int]) -> bool:
    """Find one augmenting path from `start` and flip it (Kuhn's algorithm), walked with
    a stack of its own so that a pipeline of thousands of steps cannot exhaust Python's."""
    seen: set[int] = set()
    stack = [(start, _bits(reaches[start]))]
    taken: list[int] = []  # taken[i]: the later step level i reached level i + 1 through
    while stack:
        _, targets = stack[-1]
        for target in targets:
            if target in seen:
                continue
            seen.add(target)
            holder = matched.get(target)
            if holder is None:
                for (earlier, _), later in zip(stack, [*taken, target], strict=True):
                    matched[later] = earlier
                return True
            taken.append(target)
            stack.append((holder, _bits(reaches[holder])))
            break
        else:
            stack.pop()
            if taken:
                taken.pop()
    return False


def environment(threads: int | None) -> dict[str, str]:
    """The variables that cap a step process's pools at `threads` (none for no cap).

    They have to be in the environment of the process that loads the libraries: for a step
    forked from a warm server, the server's (kfg.engine.warm keys its servers by them).
    Resizing OpenBLAS's pool in a forked child instead (threadpoolctl, after the fork)
    made a random forest's fit on examples/wine 1.8x slower, alone on an idle machine.
    """
    if threads is None:
        return {}
    return {name: str(threads) for name in VARIABLES}
