"""Run a pipeline on this machine: steps as processes, in parallel where the graph allows.

Each step is looked up in the cache first; a miss starts `python -m kfg.engine.worker`
in its own session (so a terminal's Ctrl-C reaches only kfg, which then stops exactly its
own children). A failed step does not stop independent branches, whose results are worth
keeping; the steps that depend on it are skipped. Events go to a callback so the CLI can
draw progress without the engine knowing about terminals.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline
from kfg.engine.cache import LOG, OUTPUTS, REPORT, Cache, Entry, step_key
from kfg.engine.threads import environment, per_step, width
from kfg.errors import KfgError
from kfg.notebook.reader import Notebook

PENDING, RUNNING, CACHED, DONE, FAILED, SKIPPED = (
    "pending",
    "running",
    "cached",
    "done",
    "failed",
    "skipped",
)


class EngineError(KfgError):
    """The run cannot start as asked (for example `--only` a step whose inputs are not cached)."""


@dataclass
class StepState:
    name: str
    status: str = PENDING
    seconds: float = 0.0
    key: str = ""
    entry: Entry | None = None
    error: str = ""
    log: Path | None = None


@dataclass
class RunSummary:
    pipeline: str
    steps: list[StepState]
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status in (CACHED, DONE) for s in self.steps)

    @property
    def executed(self) -> list[str]:
        return [s.name for s in self.steps if s.status in (DONE, FAILED)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "steps": [
                {
                    "name": s.name,
                    "status": s.status,
                    "cached": s.status == CACHED,
                    "seconds": round(s.seconds, 3),
                    "key": s.key,
                    "report": str(s.entry.report) if s.entry else None,
                    "log": str(s.log) if s.log else None,
                    "error": s.error or None,
                }
                for s in self.steps
            ],
            "metrics": self.metrics,
        }


Listener = Callable[[StepState], None]


class Engine:
    def __init__(
        self,
        pipeline: Pipeline,
        flow: Flow,
        notebook: Notebook,
        cache: Cache,
        *,
        parameters: dict[str, Any] | None = None,
        jobs: int | None = None,
        use_cache: bool = True,
        rerun_from: str | None = None,
        only: str | None = None,
        listener: Listener | None = None,
        sharing: int = 1,
        command: str = "run",
    ) -> None:
        self.pipeline = pipeline
        self.flow = flow
        self.notebook = notebook
        self.cache = cache
        defaults = {p.name: p.default for p in pipeline.parameters}
        self.values = {**defaults, **(parameters or {})}
        self.jobs = step_slots(jobs)
        self.use_cache = use_cache
        self.forced = self._downstream(rerun_from) if rerun_from else set()
        self.only = only
        if only is not None:
            self.forced.add(only)  # --only STEP runs STEP, cached or not
        self.listener = listener or (lambda state: None)
        self.states = {s.name: StepState(s.name) for s in pipeline.steps}
        self.children: dict[str, Any] = {}  # step -> its process (Popen or forked)
        self.threads = step_threads(pipeline, flow, self.jobs, sharing)
        self.command = command  # the kfg command whose next start prestarts this server
        self.lock = threading.Lock()
        self.stopping = False

    @functools.cached_property
    def preload(self) -> list[str]:
        """What the server its steps fork from imports: asked for only when a step runs, so
        a run whose steps are all cached never imports the runtime (about 20 ms)."""
        return preload_modules(self.pipeline, self.notebook)

    def _downstream(self, start: str) -> set[str]:
        names = {start}
        for step in self.pipeline.steps:  # notebook order is a topological order
            if any(u in names for u in self.flow.step(step.name).upstream):
                names.add(step.name)
        return names

    def _emit(self, state: StepState) -> None:
        self.listener(state)

    def _job(self, name: str) -> dict[str, Any]:
        step = self.pipeline.step(name)
        here = self.flow.step(name)
        return {
            "prelude": [(c, self.notebook.cell(c).source) for c in self.pipeline.prelude],
            "cells": [(c, self.notebook.cell(c).source) for c in step.cells],
            "image": step.image,
            "packages": step.packages,
            "parameters": {p: self.values[p] for p in here.parameters},
            "outputs": here.outputs,
            "metrics": {m.name: m.variable for m in self.pipeline.metrics if m.step == name},
        }

    def _inputs(self, name: str) -> dict[str, Path]:
        paths = {}
        for variable, source in self.flow.step(name).inputs.items():
            entry = self.states[source].entry
            assert entry is not None
            paths[variable] = entry.output(variable)
        return paths

    def _key(self, name: str, job: dict[str, Any], entries: dict[str, Entry] | None = None) -> str:
        digests = {}
        for variable, source in self.flow.step(name).inputs.items():
            entry = self.states[source].entry if entries is None else entries[source]
            assert entry is not None
            digests[variable] = entry.digests[variable]
        return step_key(inputs=digests, **job)

    def will_execute(self) -> bool:
        """Whether some step will run rather than come from the cache.

        Walks the cache as `run` will, in notebook order, and stops at the first step that
        misses: its key is known (its inputs are cached) and nothing is stored under it. A
        lookup verifies an entry once per Cache, so `run` pays for none of this again.
        """
        if not self.use_cache or (self.forced and self.only is None):
            return True
        if self.only is not None:
            return True  # --only runs its step, cached or not
        entries: dict[str, Entry] = {}
        for step in self.pipeline.steps:
            entry = self.cache.lookup(self._key(step.name, self._job(step.name), entries))
            if entry is None:
                return True
            entries[step.name] = entry
        return False

    def _execute(self, name: str) -> StepState:
        state = self.states[name]
        job = self._job(name)
        state.key = self._key(name, job)
        with self.cache.claim(state.key):
            return self._execute_claimed(name, state, job)

    def _execute_claimed(self, name: str, state: StepState, job: dict[str, Any]) -> StepState:
        reuse_only = self.only is not None and name != self.only  # --only: the rest is cached
        if (self.use_cache and name not in self.forced) or reuse_only:
            entry = self.cache.lookup(state.key)
            if entry is not None:
                state.entry, state.status, state.log = entry, CACHED, entry.log
                return state
        if reuse_only:
            raise EngineError(
                f"`--only {self.only}` needs step `{name}` from the cache, but it is not"
                " cached with these inputs; run the pipeline once first"
            )
        state.status = RUNNING
        self._emit(state)
        work = self.cache.workspace()
        spec = {
            "pipeline": self.pipeline.name,
            "step": name,
            "prelude": job["prelude"],
            "cells": job["cells"],
            "parameters": job["parameters"],
            "inputs": {v: str(p) for v, p in self._inputs(name).items()},
            "outputs": {v: str(work / OUTPUTS / v) for v in job["outputs"]},
            "metrics": job["metrics"],
            "consumers": self.flow.consumers(name),
            "report": str(work / REPORT),
            "result": str(work / "metrics.json"),
        }
        (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        started = time.perf_counter()
        process = launch(work / "spec.json", work / LOG, self.preload, self.threads)
        with self.lock:
            self.children[name] = process
        code = process.wait()
        with self.lock:
            self.children.pop(name, None)
        state.seconds = time.perf_counter() - started
        # A cell may end the process itself (os._exit(0)) before the step saved anything:
        # only the result the worker writes last says that the step finished.
        metrics = _result(work / "metrics.json") if code == 0 else None
        if metrics is None or self.stopping:
            state.status = FAILED
            state.error = _cause(work / LOG, code) if not self.stopping else "interrupted"
            state.log = self._keep_failure(name, work)
            return state
        entry = self.cache.commit(
            work, state.key, {"step": name, "metrics": metrics, "seconds": state.seconds}
        )
        state.entry, state.status, state.log = entry, DONE, entry.log
        return state

    def _keep_failure(self, name: str, work: Path) -> Path:
        """A failed step's log (and report) stay on disk, outside the cache: the latest
        failure of each step. Parallel trials fail the same step at once; each replaces the
        one before under a lock, and another kfg process doing the same is retried."""
        target = self.cache.root / "failed" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.cache.claim(f"failed/{name}"):
            for _ in range(10):
                retired = target.parent / f".{name}.old-{os.getpid()}-{threading.get_ident()}"
                with contextlib.suppress(FileNotFoundError):
                    os.replace(target, retired)
                    shutil.rmtree(retired, ignore_errors=True)
                try:
                    os.replace(work, target)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
        return target / LOG

    def stop(self) -> None:
        """Terminate the steps this run started, and only those."""
        self.stopping = True
        with self.lock:
            children = list(self.children.values())
        for child in children:
            try:
                os.killpg(child.pid, signal.SIGTERM)  # the step and what it started
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)  # not yet in its own session

    def run(self) -> RunSummary:
        started = time.perf_counter()
        if self.will_execute():
            # The forkserver imports the prelude (pandas, scikit-learn: seconds) while the
            # engine looks up the steps before the first one that runs; a run whose steps
            # are all cached never starts it.
            warm_up(self.preload, self.pipeline.source, self.threads, self.command)
        names = [s.name for s in self.pipeline.steps]
        if self.only is not None:
            wanted = {self.only} | self._upstream(self.only)
            for name in names:
                if name not in wanted:
                    self.states[name].status = SKIPPED
            names = [n for n in names if n in wanted]
        pending = list(names)
        running: dict[Future[StepState], str] = {}
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="kfg-step") as pool:
            try:
                while pending or running:
                    for name in list(pending):
                        upstream = self.flow.step(name).upstream
                        states = [self.states[u].status for u in upstream]
                        if any(s in (FAILED, SKIPPED) for s in states):
                            self.states[name].status = SKIPPED
                            self.states[name].error = "an earlier step failed"
                            self._emit(self.states[name])
                            pending.remove(name)
                        elif all(s in (CACHED, DONE) for s in states) and len(running) < self.jobs:
                            running[pool.submit(self._execute, name)] = name
                            pending.remove(name)
                    if not running:
                        if pending:  # nothing runs and nothing can start: never spin
                            raise EngineError(
                                "steps "
                                + ", ".join(f"`{n}`" for n in pending)
                                + " wait for each other and can never start"
                            )
                        continue
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.pop(future)
                        self._emit(future.result())
            except KeyboardInterrupt:
                self.stop()
                raise
            except BaseException:
                self.stop()
                raise
        summary = RunSummary(self.pipeline.name, list(self.states.values()), 0.0)
        summary.seconds = time.perf_counter() - started
        for state in summary.steps:
            if state.entry is not None:
                summary.metrics.update(state.entry.metrics)
        return summary

    def locate_inputs(self, name: str) -> dict[str, Path]:
        """Where the cache holds the values `name` would receive, without running anything."""
        needed = self._upstream(name)
        for step in self.pipeline.steps:
            if step.name not in needed:
                continue
            state = self.states[step.name]
            state.key = self._key(step.name, self._job(step.name))
            state.entry = self.cache.lookup(state.key)
            if state.entry is None:
                raise EngineError(
                    f"step `{step.name}` is not in the cache with these parameters; run"
                    " `kfg run` first"
                )
        return self._inputs(name)

    def _upstream(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = [name]
        while todo:
            for upstream in self.flow.step(todo.pop()).upstream:
                if upstream not in found:
                    found.add(upstream)
                    todo.append(upstream)
        return found


class _Forked:
    """A step forked from the warm forkserver, with the interface of a Popen."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid: int = process.pid

    def wait(self) -> int:
        self.process.join()
        code = self.process.exitcode
        return 1 if code is None else code  # -N: killed by signal N, as Popen has it


# The preload list and thread cap this process's forkserver started with, once started.
_FORKSERVER: list[tuple[tuple[str, ...], int | None]] = []
_PRELOAD_LOCK = threading.Lock()


def step_slots(jobs: int | None) -> int:
    """How many steps an engine runs at once: `jobs`, else one per CPU."""
    return max(1, jobs or os.cpu_count() or 1)


def step_threads(pipeline: Pipeline, flow: Flow, jobs: int, sharing: int = 1) -> int | None:
    """The threads each step's native pools get (None: the libraries' own default) when an
    engine runs up to `jobs` steps at once and `sharing` engines run side by side (the
    parallel trials of a tune): the cores over the steps that can run together, which the
    pipeline's widest set of independent steps bounds (kfg.engine.threads)."""
    widest = width({s.name: flow.step(s.name).upstream for s in pipeline.steps})
    return per_step(max(1, sharing) * min(jobs, max(1, widest)))


def preload_modules(pipeline: Pipeline, notebook: Notebook) -> list[str]:
    """Modules the prelude imports, and those its values' formats need: every step imports
    them, so the forkserver does it once."""
    import ast

    from kfg.pysource.source import parse_cell
    from kfg.runtime.step import format_imports

    names = ["kfg.runtime.step", "kfg.engine.worker"]
    for position in pipeline.prelude:
        tree = parse_cell(notebook.cell(position).source)
        if not isinstance(tree, ast.Module):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    # then what the runtime imports to pass those libraries' values between steps
    return list(dict.fromkeys(names + format_imports(names)))


def _forkserver(preload: list[str], threads: int | None) -> bool:
    """Whether steps with this prelude fork from the forkserver, which imports it once.

    The forkserver of a process has one preload list and one thread cap: a later pipeline
    with other modules (a test session, a notebook calling the engine twice) starts its
    steps afresh instead. The first caller starts it.
    """
    import multiprocessing

    with _PRELOAD_LOCK:
        wanted = (tuple(preload), threads)
        usable = "forkserver" in multiprocessing.get_all_start_methods() and (
            not _FORKSERVER or _FORKSERVER[0] == wanted
        )
        if usable and not _FORKSERVER:
            multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
            _FORKSERVER.append(wanted)
            _start_forkserver(threads)
    return usable


def _start_forkserver(threads: int | None) -> None:
    """Spawn the forkserver now; its imports run in the background.

    multiprocessing starts it with this process's environment: for that moment it carries
    the hash seed the warm server gets (warm.seeded) and the thread cap, and only then.
    """
    from multiprocessing import forkserver

    from kfg.engine import warm

    wanted = warm.seeded({**os.environ, **environment(threads)})
    changed = {
        name: os.environ.get(name) for name in wanted if os.environ.get(name) != wanted[name]
    }
    os.environ.update({name: wanted[name] for name in changed})
    try:
        forkserver.ensure_running()
    finally:
        for name, before in changed.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


WARM_UPS: list[list[str]] = []  # the preload lists warm_up started the forkserver with


# (preload, thread cap) -> its warm server's socket
_WARM: dict[tuple[tuple[str, ...], int | None], Path | None] = {}


def _warm_server(preload: list[str], threads: int | None) -> Path | None:
    """The warm server (kfg.engine.warm) for `preload` and the thread cap, asked for once
    per process."""
    from kfg.engine import warm

    with _PRELOAD_LOCK:
        wanted = (tuple(preload), threads)
        if wanted not in _WARM:
            _WARM[wanted] = warm.ensure(preload, threads=threads)
        return _WARM[wanted]


def warm_up(
    preload: list[str],
    config: Path | None = None,
    threads: int | None = None,
    command: str = "run",
) -> None:
    """Start the server that imports `preload` (a warm server kept between runs, or this
    run's forkserver) without waiting for it.

    The first step forks from it when it is ready; until then kfg goes on with its own work
    (cache lookups, the steps before the first miss), so the prelude's imports overlap it
    instead of following it. The next run of `config` starts that warm server even before
    it has read the pipeline (kfg.engine.warm.prestart).
    """
    if _warm_server(preload, threads) is not None:
        if config is not None:
            from kfg.engine import warm

            warm.remember_preload(config, preload, threads, command)
        WARM_UPS.append(list(preload))
        return
    if _forkserver(preload, threads):
        WARM_UPS.append(list(preload))


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_left_alone() -> Iterator[None]:
    """Start a child without it re-running the program's main script first.

    multiprocessing re-executes the parent's `__main__` file in every child it starts (as
    `__mp_main__`) unless `__main__` came from a module run with `-m`; for the `kfg`
    console script that imported kfg's whole CLI (typer, click: about half a second) into
    every step, and a script driving the engine without a main guard would run again. A
    step needs nothing from it (its target is kfg.engine.worker.run_in_child), so for the
    duration of the start `__main__` is described as a `-m` module named `*.__main__`,
    which multiprocessing leaves alone (multiprocessing/spawn.py, _fixup_main_from_name).
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    import importlib.machinery

    main.__spec__ = importlib.machinery.ModuleSpec("kfg.__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def launch(spec: Path, log: Path, preload: list[str], threads: int | None = None) -> Any:
    """Start one step: forked from a server that already imported the prelude's modules
    (a step then starts in milliseconds instead of re-importing pandas and scikit-learn):
    the warm server kept between runs, else this run's forkserver, else (no fork, or the
    modules changed) a fresh interpreter. Each has `threads` in its environment."""
    import multiprocessing

    address = _warm_server(preload, threads)
    if address is not None:
        from kfg.engine import warm

        step = warm.start_step(address, spec, log, threads)
        if step is not None:
            return step
        with _PRELOAD_LOCK:
            _WARM[(tuple(preload), threads)] = None  # it left (idle, or killed): this run's own
    usable = _forkserver(preload, threads)
    if usable:
        from kfg.engine.worker import run_in_child

        context = multiprocessing.get_context("forkserver")
        process = context.Process(target=run_in_child, args=(str(spec), str(log)), daemon=False)
        with _MAIN_LOCK, _main_left_alone():
            process.start()
        return _Forked(process)
    from kfg.engine import warm

    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "kfg.engine.worker", str(spec)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=warm.seeded({**os.environ, **environment(threads), "PYTHONUNBUFFERED": "1"}),
        )


def _result(path: Path) -> dict[str, Any] | None:
    """The metrics of a step that finished, or None when its process ended before that."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))["metrics"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _cause(log: Path, code: int) -> str:
    """The step's one-line cause: the runtime's `kfg: ...` line; else (a crash, a signal,
    a library calling exit) how its process ended and the last line it printed, which is
    only a clue: often a cell's own output."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("kfg: "):
            return line[len("kfg: ") :]
    if code < 0:
        try:
            ended = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            ended = f"was killed by signal {-code}"
    else:
        ended = f"exited with status {code}"
    last = next((line.strip() for line in reversed(lines) if line.strip()), None)
    tail = f"; the last line it printed: {last}" if last else ", printing nothing"
    if code == 0:  # a cell ended the process (os._exit(0)) before the step saved its values
        return f"the step's process exited with status 0 before the step finished{tail}"
    return f"the step's process {ended} without reporting an error{tail}"
