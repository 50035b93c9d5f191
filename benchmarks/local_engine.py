"""The local engine against the alternatives and against the physical limit, like for like.

Every figure is measured in this run, on this machine, on the same notebook
(`examples/wine`), and printed side by side; nothing is quoted from elsewhere.

1. `kfg run` cold against the notebook executed top to bottom by nbclient (same cells),
   nbclient first on even repeats and second on odd ones.
2. `kfg run` warm (nothing changed): goal under 10% of cold.
3. A one-parameter re-run (`-p n_estimators=...`, which reaches 2 of 9 steps) against a
   cold run, and against its floor: the prelude's imports in a fresh interpreter plus the
   re-run steps' own compute. Goal: at most 40% of cold, close to the floor. Measured as a
   user's next run goes (the warm step server the cold run started is up) and without it
   (KFG_WARM_IDLE=0: the run's own forkserver imports the prelude again).

Cold runs and every `kfg tune` start with no warm step server (kfg.engine.warm), so they
pay the prelude's imports as papermill's kernels and nbclient do.
4. `kfg tune` with N trials, `parallelTrials` at once, against a papermill sweep of the same
   N parameter sets (taken from kfg's trials) with the same number of notebooks executing
   at once (a process pool of papermill executions, papermill imported before the clock
   starts). Each runs one untimed round of 2 trials first, so both find their files in the
   page cache. kfg and papermill alternate (kfg first on even repeats, papermill first on odd
   ones). Also kfg against the physical limit: the prelude imported once, the steps the
   tuned steps wait for run once, and every trial's tuned steps plus the other untuned
   steps spread over the parallel slots, each step's compute measured by executing its
   cells in one warm interpreter (no processes, no serialization). That limit divides the
   spread work by the slots, as if two processes ran twice as fast as one; the same work
   run two at a time by processes forked from that interpreter is printed beside it
   ("measured"), since two vCPUs of a shared machine give less than twice one. So is the
   same work with a process per step, each forked afresh from that interpreter ("with a
   process per step"): the price of isolating steps, which kfg pays by design, apart from
   kfg's own work (values through files, the cache, Optuna). Goals:
   >= 4x papermill at N=8 and within 1.3x of the limit at N=8, 16, 32.
5. The same pipeline through kfp.local with SubprocessRunner(use_venv=False) (optional).

`python benchmarks/local_engine.py [--trials 8 16 32] [--repeats 2] [--skip-kfp]
[--sections run rerun tune kfp]`. The load average is printed, and the CPU time the
hypervisor stole during kfg's tune runs, because a shared machine makes every figure
noisy: compare ratios from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PARALLEL = 2
TUNED = ("n_estimators", "max_depth")
TUNING = f"""  tuning:
    objective: {{metric: forest-accuracy, type: maximize}}
    algorithm: {{name: random, settings: {{random_state: 1}}}}
    maxTrials: 8
    parallelTrials: {PARALLEL}
    parameters:
      n_estimators: {{type: int, min: 20, max: 300, step: 20}}
      max_depth: {{type: int, min: 2, max: 12}}
"""
KFG = [sys.executable, "-m", "kfg"]  # replaced in main() by the console script users run
# As pip writes the `kfg` console script (.venv/bin/kfg); a kfg older than kfg.cli.console
# (measured with --kfg-src) had main as its entry point.
CONSOLE_SCRIPT = (
    "import sys\n"
    "try:\n    from kfg.cli import console as entry\n"
    "except ImportError:\n    from kfg.cli import main as entry\n"
    "if __name__ == '__main__':\n    sys.exit(entry())\n"
)


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return time.perf_counter() - start, done.stdout


def nbclient_seconds(config: Path) -> float:
    from tests.reference import notebook_metrics

    start = time.perf_counter()
    notebook_metrics(config)
    return time.perf_counter() - start


# --- compute: each step's cells in one warm interpreter --------------------------------

PROFILE = textwrap.dedent(
    """
    import json, sys, time
    spec = json.loads(sys.stdin.read())
    namespace = {"__name__": "__main__"}
    started = time.perf_counter()
    exec(compile(spec["prelude"], "<prelude>", "exec"), namespace)
    prelude = time.perf_counter() - started
    namespace.update(spec["defaults"])
    steps = {}
    for name, source in spec["untuned"]:
        started = time.perf_counter()
        exec(compile(source, name, "exec"), namespace)
        steps[name] = time.perf_counter() - started
    trials = []
    for values in spec["trials"]:
        scope = dict(namespace)
        scope.update(values)
        seconds = {}
        for name, source in spec["tuned"]:
            started = time.perf_counter()
            exec(compile(source, name, "exec"), scope)
            seconds[name] = time.perf_counter() - started
        trials.append(seconds)
    # The same work as the machine runs it `parallel` at a time: processes forked from this
    # warm interpreter take the trials (and the untuned side steps) one by one, as kfg's
    # parallel trials do. Two processes on two vCPUs do not run twice as fast as one.
    import multiprocessing
    tasks = [("side", name) for name, _ in spec["untuned"] if name in spec["side"]]
    tasks += [("trial", index) for index in range(len(spec["trials"]))]
    sources = dict(spec["untuned"])
    def task(job):
        kind, what = job
        scope = dict(namespace)
        if kind == "side":
            exec(compile(sources[what], what, "exec"), scope)
            return
        scope.update(spec["trials"][what])
        for name, source in spec["tuned"]:
            exec(compile(source, name, "exec"), scope)
    with multiprocessing.get_context("fork").Pool(spec["parallel"]) as pool:
        pool.map(len, [[]] * spec["parallel"])  # the processes are up before the clock
        started = time.perf_counter()
        list(pool.imap_unordered(task, tasks, chunksize=1))
        parallel = time.perf_counter() - started
    # The same again with a process per step, as kfg isolates steps: each step forked afresh
    # from this interpreter (with the names the trial's earlier steps defined, computed
    # above), `parallel` at a time. What this adds to `parallel` is the price of isolation
    # itself (the fork, the pages a fresh child copies or faults in), before any of kfg's
    # own work: values through files, the cache, Optuna.
    import os
    runs = []  # one list of (source, scope before it) per task
    for kind, what in tasks:
        if kind == "side":
            runs.append([(sources[what], dict(namespace))])
            continue
        scope = dict(namespace)
        scope.update(spec["trials"][what])
        chain = []
        for name, source in spec["tuned"]:
            chain.append((compile(source, name, "exec"), dict(scope)))
            exec(chain[-1][0], scope)
        runs.append(chain)
    started = time.perf_counter()
    pending, running = [list(r) for r in runs], {}
    while pending or running:
        while pending and len(running) < spec["parallel"]:
            chain = pending.pop(0)
            source, scope = chain.pop(0)
            pid = os.fork()
            if pid == 0:
                try:
                    exec(source, scope)
                finally:
                    os._exit(0)
            running[pid] = chain
        pid, _ = os.wait()
        chain = running.pop(pid)
        if chain:
            pending.insert(0, chain)  # the trial's next step, next
    isolated = time.perf_counter() - started
    print(json.dumps({"prelude": prelude, "steps": steps, "trials": trials, "parallel": parallel,
                      "isolated": isolated}))
    """
)


class Shape:
    """The wine pipeline's steps as the physical limit sees them."""

    def __init__(self, config: Path, tuned: tuple[str, ...]) -> None:
        from kfg.core.load import load_pipeline

        result = load_pipeline(config)
        pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
        assert pipeline is not None and flow is not None and notebook is not None
        self.order = [s.name for s in pipeline.steps]
        reached: set[str] = set()
        for name in self.order:  # notebook order is a topological order
            here = flow.step(name)
            if set(here.parameters) & set(tuned) or set(here.upstream) & reached:
                reached.add(name)
        self.tuned = [n for n in self.order if n in reached]
        before: set[str] = set()
        todo = list(self.tuned)
        while todo:
            for upstream in flow.step(todo.pop()).upstream:
                if upstream not in before and upstream not in reached:
                    before.add(upstream)
                    todo.append(upstream)
        self.chain = [n for n in self.order if n in before]  # what the tuned steps wait for
        self.side = [n for n in self.order if n not in reached and n not in before]
        self.prelude = "\n".join(notebook.cell(c).source for c in pipeline.prelude)
        self.sources = {
            s.name: "\n".join(notebook.cell(c).source for c in s.cells) for s in pipeline.steps
        }
        self.defaults = {p.name: p.default for p in pipeline.parameters}

    def profile(self, trials: list[dict[str, Any]], parallel: int) -> dict[str, Any]:
        spec = {
            "prelude": self.prelude,
            "defaults": self.defaults,
            "untuned": [(n, self.sources[n]) for n in self.order if n not in self.tuned],
            "side": self.side,
            "tuned": [(n, self.sources[n]) for n in self.tuned],
            "trials": trials,
            "parallel": parallel,
        }
        done = subprocess.run(
            [sys.executable, "-c", PROFILE],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            check=True,
        )
        profile: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # cells print
        return profile

    def tune_limit(self, profile: dict[str, Any], parallel: int) -> tuple[float, float, float, str]:
        """The limit as the issue defines it (the spread work divided by the slots, as if two
        processes ran twice as fast as one), as this machine runs that work `parallel` at a
        time (measured by the profile: what two vCPUs really give), and the same with a
        process per step (what isolating steps costs before any of kfg's own work)."""
        steps = profile["steps"]
        chain = sum(steps[n] for n in self.chain)
        spread = sum(steps[n] for n in self.side) + sum(sum(t.values()) for t in profile["trials"])
        slots = min(parallel, os.cpu_count() or 1)
        limit = profile["prelude"] + chain + spread / slots
        measured = profile["prelude"] + chain + profile["parallel"]
        isolated = profile["prelude"] + chain + profile["isolated"]
        return (
            limit,
            measured,
            isolated,
            (
                f"prelude {profile['prelude']:.2f} + chain {chain:.2f} + {spread:.2f} / {slots}"
                f" slot(s); measured {slots} at a time: {profile['parallel']:.2f}; with a"
                f" process per step: {profile['isolated']:.2f}"
            ),
        )


# --- papermill, the same parallelism ---------------------------------------------------


def _warm_papermill() -> None:
    import papermill  # noqa: F401  (imported once per pool process, before the clock)

    quiet = os.open(os.devnull, os.O_WRONLY)  # the kernels' warnings on shutdown
    os.dup2(quiet, 2)


def _papermill_one(source: str, target: str, parameters: dict[str, Any], cwd: str) -> None:
    import papermill

    papermill.execute_notebook(
        source, target, parameters=parameters, kernel_name="python3", progress_bar=False, cwd=cwd
    )


def sweep_notebook(workdir: Path, notebook: Path, skip: set[int]) -> Path:
    import nbformat

    book = nbformat.read(str(notebook), as_version=4)
    book.cells = [c for i, c in enumerate(book.cells, start=1) if i not in skip]
    for cell in book.cells:  # papermill injects values after the cell tagged "parameters"
        if cell.cell_type == "code" and cell.source.startswith("test_size"):
            cell.metadata["tags"] = ["parameters"]
    source = workdir / "sweep.ipynb"
    nbformat.write(book, str(source))
    return source


def papermill_sweep(
    pool: ProcessPoolExecutor, workdir: Path, source: Path, trials: list[dict[str, Any]]
) -> float:
    """Seconds for the whole sweep. A kernel that dies while starting (jupyter_client now
    and then loses a race for its ports) voids the attempt: the sweep runs again, timed
    afresh, so papermill is never charged for it."""
    for attempt in range(3):
        start = time.perf_counter()
        futures = [
            pool.submit(
                _papermill_one, str(source), str(workdir / f"sweep-{i}.ipynb"), v, str(workdir)
            )
            for i, v in enumerate(trials)
        ]
        try:
            for future in futures:
                future.result()
        except RuntimeError as exc:
            if "Kernel died" not in str(exc) or attempt == 2:
                raise
            for future in futures:
                future.cancel()
            for future in futures:
                with contextlib.suppress(Exception):
                    future.result()
            print(f"# papermill: {exc}; the sweep runs again", flush=True)
            continue
        return time.perf_counter() - start
    raise AssertionError("unreachable")


FIRST_EVER = False  # set by --first-ever


def nothing_warm() -> None:
    """No warm step server is up: a cold run pays the prelude's imports, as papermill's
    kernels and nbclient's do.

    What earlier runs left beside the servers' sockets stays, as on a user's machine: which
    modules a kale.yaml's steps preload (so the run starts its server before loading the
    pipeline) and what servers learned. With --first-ever it goes too, and every cold run
    is a notebook's very first one.
    """
    from kfg.engine import warm

    warm.stop_servers(wait=10)
    folder = warm.socket_directory()
    if FIRST_EVER and folder is not None:
        for left in [*folder.glob("*.preload"), *folder.glob("*.learned")]:
            left.unlink()


def kfg_tune(
    config: Path, trials: int, cache: Path, cwd: Path
) -> tuple[float, list[dict[str, Any]]]:
    shutil.rmtree(cache, ignore_errors=True)
    nothing_warm()
    seconds, out = timed(
        [*KFG, "tune", str(config), "--trials", str(trials), "--cache-dir", str(cache), "--json"],
        cwd,
    )
    return seconds, [t["params"] for t in json.loads(out)["trials"]]


def kfp_local_seconds(workdir: Path, config: Path) -> float:
    from importlib.metadata import version

    text = config.read_text()
    text = text.replace("pandas==2.2.3", f"pandas=={version('pandas')}")
    text = text.replace("scikit-learn==1.5.2", f"scikit-learn=={version('scikit-learn')}")
    config.write_text(text)
    out = workdir / "rendered"
    timed([*KFG, "render", str(config), "-o", str(out)], workdir)
    runner = (
        "import sys\nfrom kfp import components, local\n"
        "local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])\n"
        "components.load_component_from_file(sys.argv[1])()\n"
    )
    seconds, _ = timed(
        [sys.executable, "-c", runner, str(out / "pipeline.ir.yaml"), str(workdir / "kfp-root")],
        workdir,
    )
    return seconds


def stolen() -> float:
    """CPU seconds the hypervisor gave to others since boot (the `steal` column of
    /proc/stat), 0 where there is none. A figure taken while the host steals is slower for
    reasons that are not kfg's: printed beside the tune figures so runs can be compared."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:6.2f} s"
    return f"{statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-kfp", action="store_true")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["run", "rerun", "tune", "kfp"],
        choices=["run", "rerun", "tune", "kfp"],
    )
    parser.add_argument(
        "--kfg-src",
        type=Path,
        default=REPO,
        help="The source tree whose kfg to measure (e.g. an older commit's, for before and"
        " after on the same machine); it runs as the `kfg` console script does.",
    )
    parser.add_argument(
        "--first-ever",
        action="store_true",
        help="Before every cold run, also forget what earlier runs noted beside the warm"
        " servers (preload hints, learned imports).",
    )
    args = parser.parse_args()
    global FIRST_EVER
    FIRST_EVER = args.first_ever
    os.environ["PYTHONPATH"] = str(args.kfg_src.resolve())
    sockets = tempfile.mkdtemp(prefix="kfgw-", dir="/tmp")  # this run's warm servers only
    os.environ["KFG_WARM_DIR"] = str(Path(sockets) / "warm")
    sections = set(args.sections) - ({"kfp"} if args.skip_kfp else set())
    print(f"# load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kfg-engine-bench-") as directory:
        work = Path(directory)
        (work / ".git").mkdir()
        shutil.copytree(REPO / "examples" / "wine", work / "wine")
        config = work / "wine" / "kale.yaml"
        script = work / "kfg"
        script.write_text(CONSOLE_SCRIPT)
        KFG[:] = [sys.executable, str(script)]
        print(f"# kfg from {args.kfg_src.resolve()}, run as a console script")
        shape = Shape(config, TUNED)

        if "run" in sections:
            cold, warm, notebook = [], [], []
            for repeat in range(args.repeats):  # nbclient first on even repeats
                if repeat % 2 == 0:
                    notebook.append(nbclient_seconds(config))
                nothing_warm()
                cold.append(timed([*KFG, "run", str(config), "--no-cache"], work)[0])
                warm.append(timed([*KFG, "run", str(config)], work)[0])
                if repeat % 2 == 1:
                    notebook.append(nbclient_seconds(config))
            c, w, n = (statistics.median(v) for v in (cold, warm, notebook))
            print(
                f"1. wine: kfg run cold {spread(cold)}   nbclient top to bottom {spread(notebook)}"
                f"   (nbclient / kfg {n / c:.2f}x)"
            )
            print(f"2. wine: kfg run warm {spread(warm)}   = {100 * w / c:.1f}% of cold")
            results.update(cold=cold, warm=warm, notebook=notebook)

        if "rerun" in sections:
            colds, reruns, floors, alone = [], [], [], []
            for index in range(args.repeats):
                cache = work / "rerun-cache"
                shutil.rmtree(cache, ignore_errors=True)
                base = [*KFG, "run", str(config), "--cache-dir", str(cache), "--json"]
                nothing_warm()
                cold_s, _ = timed(base, work)
                value = 10 + index  # few trees: the accuracy, so `results`, changes too
                # Without the warm server (its own forkserver imports the prelude again)...
                alone_s, _ = timed(
                    [*base, "-p", f"n_estimators={value + 100}"], work, {"KFG_WARM_IDLE": "0"}
                )
                # ...and as a user's next run goes: the server the cold run started is warm.
                rerun_s, out = timed([*base, "-p", f"n_estimators={value}"], work)
                ran = [s["name"] for s in json.loads(out)["steps"] if not s["cached"]]
                profile = shape.profile([{**shape.defaults, "n_estimators": value}], 1)
                floor = profile["prelude"] + sum(
                    profile["trials"][0].get(n, profile["steps"].get(n, 0.0)) for n in ran
                )
                colds.append(cold_s)
                alone.append(alone_s)
                reruns.append(rerun_s)
                floors.append(floor)
            c, r, f, a = (statistics.median(v) for v in (colds, reruns, floors, alone))
            print(
                f"3. wine: one-parameter re-run ({len(ran)} of {len(shape.order)} steps:"
                f" {', '.join(ran)}) {spread(reruns)} = {100 * r / c:.1f}% of cold"
                f" {spread(colds)}; floor (prelude import + their compute) {f:.2f} s,"
                f" re-run / floor {r / f:.2f}x; without the warm server (KFG_WARM_IDLE=0)"
                f" {spread(alone)} = {100 * a / c:.1f}% of cold, {a / f:.2f}x the floor"
            )
            results.update(rerun_cold=colds, rerun=reruns, rerun_floor=floors, rerun_alone=alone)

        if "tune" in sections:
            tuned = work / "tuned"
            shutil.copytree(REPO / "examples" / "wine", tuned)
            (tuned / "kale.yaml").write_text((tuned / "kale.yaml").read_text() + TUNING)
            source = sweep_notebook(work, tuned / "wine.ipynb", skip={8, 9})
            rng = random.Random(1)
            fallback = {
                n: [
                    {"n_estimators": rng.randrange(20, 301, 20), "max_depth": rng.randint(2, 12)}
                    for _ in range(n)
                ]
                for n in args.trials
            }
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(PARALLEL, context, initializer=_warm_papermill) as pool:
                list(pool.map(time.sleep, [0.5] * PARALLEL))  # both processes started
                # One untimed round of each first, so that the first timed figure does not
                # alone pay for reading Optuna, kfg and the kernel's files from disk.
                _, warm_params = kfg_tune(tuned / "kale.yaml", PARALLEL, work / "cache-warm", work)
                papermill_sweep(pool, work, source, warm_params)
                for trials in args.trials:
                    kfg_times, pm_times, limits, measured, isolated = [], [], [], [], []
                    steal = 0.0  # during kfg's runs
                    params = fallback[trials]
                    for repeat in range(args.repeats):
                        cache = work / f"cache-{trials}"
                        if repeat % 2 == 1:
                            pm = papermill_sweep(pool, work, source, params)
                        before = stolen()
                        seconds, params = kfg_tune(tuned / "kale.yaml", trials, cache, work)
                        steal += stolen() - before
                        if repeat % 2 == 0:
                            pm = papermill_sweep(pool, work, source, params)
                        profile = shape.profile(params, PARALLEL)
                        limit, real, forked, how = shape.tune_limit(profile, PARALLEL)
                        kfg_times.append(seconds)
                        pm_times.append(pm)
                        limits.append(limit)
                        measured.append(real)
                        isolated.append(forked)
                    k, p, lim, real, iso = (
                        statistics.median(v)
                        for v in (kfg_times, pm_times, limits, measured, isolated)
                    )
                    print(
                        f"4. tune N={trials:<3} parallel {PARALLEL}: kfg tune {spread(kfg_times)}"
                        f"   papermill sweep {spread(pm_times)}   (papermill / kfg {p / k:.2f}x)"
                        f"   physical limit {lim:.2f} s, measured {real:.2f} s [{how}]"
                        f"   kfg / limit {k / lim:.2f}x (measured: {k / real:.2f}x; with a"
                        f" process per step {iso:.2f} s: {k / iso:.2f}x)"
                        f"   [host steal during kfg's runs: {steal:.2f} CPU-s]"
                    )
                    results[f"tune-{trials}"] = {
                        "kfg": kfg_times,
                        "papermill": pm_times,
                        "limit": limits,
                        "limit_measured": measured,
                        "limit_isolated": isolated,
                        "steal": steal,
                    }

        if "kfp" in sections:
            seconds = kfp_local_seconds(work, config)
            print(f"5. wine: kfp.local (SubprocessRunner, use_venv=False) {seconds:6.2f} s")
            results["kfp_local"] = seconds
    nothing_warm()
    shutil.rmtree(sockets, ignore_errors=True)
    print(f"# load average at end: {os.getloadavg()}")
    print(f"# {json.dumps(results)}")


if __name__ == "__main__":
    main()
