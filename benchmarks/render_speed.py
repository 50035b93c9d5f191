"""How long `kfg render` takes, measured side by side with its peers in one run.

Every figure printed is measured by this script, now, on this machine, with the commands
run in alternating rounds (A B C, B C A, C A B, ...) so that load from other processes falls
on all of them alike. Wall time and CPU time (user + system of the command and every process
it started) are both reported: on a shared machine CPU time is the steadier of the two.

1. One notebook: `kfg render examples/wine/kale.yaml` against `python -c "import kfp"` (what
   any tool that compiles with kfp pays before it starts) and, with `--kale`, Kale's compile
   (`kale --nb wine.ipynb`) of the same notebook. Kale keeps its configuration in cell tags,
   so the script writes a tagged copy of examples/wine/wine.ipynb generated from its kale.yaml:
   the same cells in the same steps, the same dependencies between steps, the same parameters,
   metrics, image and name. Kale runs from its own virtual environment, built on first use
   under ~/.cache/kfg-bench (pinned versions; it needs the network once).
2. Many notebooks: one `kfg render` call over a repository holding N copies of the wine
   example, against the same call over a repository holding one copy. Goal (issue 18): the N
   copies cost at most 8x the one copy with N = 50.

Run with `make bench` or `python benchmarks/render_speed.py [--runs N] [--copies N] [--kale]`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "wine" / "kale.yaml"
KALE_VERSION = "2.3.0"  # kubeflow-kale on PyPI
KFP_VERSION = "2.17.0"  # the kfp kfg compiles with (kfg/upstream.py), so both compile alike
KALE_ENV = Path.home() / ".cache" / "kfg-bench" / f"kale-{KALE_VERSION}-kfp-{KFP_VERSION}"
# Printed, marked as cited, only when Kale is not measured in this run. The source is an
# earlier run of this script, not a figure published by Kale.
KALE_CITED = (
    "Kale 2.3.0's compile took 7.6x the wall time and 7.6x the CPU time of `kfg render` of the"
    " same notebook (5 alternating rounds, 2 shared CPUs, 2026-12-02), measured by"
    " `benchmarks/render_speed.py --kale` (kfg branch speed-render)"
)


@dataclass
class Command:
    label: str
    argv: list[str]
    cwd: Path
    env: dict[str, str] | None = None
    before: Any = None  # called before each run (e.g. to clear Kale's output)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self) -> None:
        if self.before is not None:
            self.before()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(self.argv, cwd=self.cwd, env=self.env, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"{self.label} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
        self.wall.append(wall)
        self.cpu.append(
            after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime,
        )

    def line(self) -> str:
        return (
            f"  {self.label:<34} wall median {statistics.median(self.wall):6.2f} s"
            f" (min {min(self.wall):5.2f}, max {max(self.wall):5.2f})"
            f"   CPU median {statistics.median(self.cpu):6.2f} s"
            f" (min {min(self.cpu):5.2f}, max {max(self.cpu):5.2f})"
        )


def alternate(commands: list[Command], runs: int) -> None:
    """One warm-up run each (bytecode caches), then `runs` rounds in rotating order."""
    for command in commands:
        command.run()
        command.wall.clear()
        command.cpu.clear()
    for round_ in range(runs):
        shift = round_ % len(commands)
        for command in commands[shift:] + commands[:shift]:
            command.run()


def ratio(numerator: Command, denominator: Command) -> str:
    wall = statistics.median(numerator.wall) / statistics.median(denominator.wall)
    cpu = statistics.median(numerator.cpu) / statistics.median(denominator.cpu)
    return f"{wall:5.2f}x wall, {cpu:5.2f}x CPU"


def kfg(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "kfg", *arguments]


# --- Kale -----------------------------------------------------------------------------------


def kale_environment() -> tuple[Path | None, str]:
    """Kale's own virtual environment, built once; (its `kale` script, or None and why)."""
    script, ready = KALE_ENV / "bin" / "kale", KALE_ENV / "installed"
    if ready.exists():
        return script, ""
    shutil.rmtree(KALE_ENV, ignore_errors=True)  # a half-built one from an interrupted run
    print(f"(building Kale {KALE_VERSION} in {KALE_ENV}; once)", flush=True)
    pins = [
        f"kubeflow-kale=={KALE_VERSION}",
        f"kfp=={KFP_VERSION}",
        f"kfp-kubernetes=={KFP_VERSION}",
    ]
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(KALE_ENV)], check=True, capture_output=True
        )
        pip = [str(KALE_ENV / "bin" / "python"), "-m", "pip", "install", "--quiet", *pins]
        subprocess.run(pip, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(KALE_ENV, ignore_errors=True)
        reason = (exc.stderr or b"").decode().strip().splitlines()
        return None, "its install failed: " + (reason[-1] if reason else f"exit {exc.returncode}")
    ready.write_text(" ".join(pins) + "\n")
    return script, ""


def kale_notebook(config: Path) -> dict[str, Any]:
    """The notebook of `config`, tagged for Kale 2.3 so that it defines the same pipeline.

    Kale 2.3's tag language (kale/processors/constants.py in the kubeflow-kale 2.3.0 wheel):
    `imports` and `functions` (prepended to every step), `pipeline-parameters`, `skip`,
    `step:NAME` with `prev:NAME` for dependencies (names match [_a-z][_a-z0-9]*), `limit:K:V`,
    and a last `pipeline-metrics` cell of `print(variable)` lines. Pipeline-wide settings are
    the notebook metadata's `kubeflow_notebook`.
    """
    from kfg.core.load import load_pipeline

    result = load_pipeline(config)
    assert result.ok and result.pipeline and result.flow and result.cellmap, result.diagnostics
    pipeline, roles = result.pipeline, result.cellmap.roles
    upstream = {s.name: s.upstream for s in result.flow.steps}
    original = json.loads(pipeline.notebook.read_text(encoding="utf-8"))

    def name(step: str) -> str:
        return step.replace("-", "_")

    seen: set[str] = set()
    cells = []
    for position, cell in enumerate(original["cells"], start=1):  # kfg counts cells from 1
        cell = {**cell, "metadata": dict(cell.get("metadata", {}))}
        cells.append(cell)
        if cell["cell_type"] != "code":
            continue
        role = roles.get(position, "skip")
        if role == "prelude":
            body = ast.parse("".join(cell["source"])).body
            imports = all(isinstance(s, ast.Import | ast.ImportFrom) for s in body)
            tags = ["imports" if imports else "functions"]
        elif role == "parameters":
            tags = ["pipeline-parameters"]
        elif role == "skip":
            tags = ["skip"]
        else:
            step = role.removeprefix("step:")
            tags = [f"step:{name(step)}"]
            if step not in seen:  # a step's later cells carry only its name
                seen.add(step)
                tags += [f"prev:{name(u)}" for u in upstream[step]]
                resources = pipeline.step(step).resources
                for kind in ("cpu", "memory"):
                    value = getattr(resources, kind)
                    if value is not None and value.request:
                        tags.append(f"limit:{kind}:{value.request}")
        cell["metadata"]["tags"] = tags
    if pipeline.metrics:
        printed = "\n".join(f"print({m.variable})" for m in pipeline.metrics)
        cells.append(
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "kale-pipeline-metrics",
                "metadata": {"tags": ["pipeline-metrics"]},
                "outputs": [],
                "source": printed,
            }
        )
    # Kale 2.3 writes the description into Python source between single quotes, unescaped.
    description = (pipeline.description or "").replace("'", "")
    metadata = {
        **original["metadata"],
        "kubeflow_notebook": {
            "pipeline_name": pipeline.name,
            "experiment_name": pipeline.name,
            "pipeline_description": description,
            "base_image": pipeline.steps[0].image,
            "volumes": [],
        },
    }
    return {**original, "cells": cells, "metadata": metadata}


def kale_command(script: Path, scratch: Path) -> Command:
    folder = scratch / "kale"
    folder.mkdir()
    notebook = folder / "wine.ipynb"
    notebook.write_text(json.dumps(kale_notebook(EXAMPLE), indent=1), encoding="utf-8")
    name = json.loads(notebook.read_text())["metadata"]["kubeflow_notebook"]["pipeline_name"]
    # Offline: no cluster to ask for PodDefaults, nothing uploaded (no --upload_pipeline).
    env = {**os.environ, "KUBECONFIG": str(scratch / "no-kubeconfig")}
    env.pop("HOSTNAME", None)
    return Command(
        f"kale --nb wine.ipynb (Kale {KALE_VERSION})",
        [str(script), "--nb", notebook.name, "--pipeline_name", name, "--experiment_name", name],
        folder,
        env,
        before=lambda: shutil.rmtree(folder / ".kale", ignore_errors=True),
    )


# --- the two comparisons ----------------------------------------------------------------------


def one_notebook(runs: int, scratch: Path, with_kale: bool) -> None:
    render = Command(
        "kfg render examples/wine/kale.yaml",
        kfg("render", str(EXAMPLE), "-o", str(scratch / "wine")),
        REPO,
    )
    import_kfp = Command('python -c "import kfp"', [sys.executable, "-c", "import kfp"], REPO)
    commands = [render, import_kfp]
    kale: Command | None = None
    why_not = "not asked for (run with --kale)"
    if with_kale:
        script, why_not = kale_environment()
        if script is not None:
            kale = kale_command(script, scratch)
            commands.append(kale)
    alternate(commands, runs)
    print(f"One notebook (examples/wine, 9 steps), {runs} alternating rounds:")
    for command in commands:
        print(command.line())
    print(f"  kfg render / import kfp:            {ratio(render, import_kfp)}")
    if kale is not None:
        print(f"  Kale compile / kfg render:          {ratio(kale, render)}")
        print(
            "  (Kale writes the pipeline IR and its DSL script; kfg writes the IR and the whole"
            " kustomize package)"
        )
    else:
        print(f"  Kale {KALE_VERSION}: not measured: {why_not}.")
        print(f"  Cited, not measured now: {KALE_CITED}.")


def copies_repository(scratch: Path, copies: int) -> Path:
    repo = scratch / f"copies-{copies}"
    (repo / ".git").mkdir(parents=True)
    for index in range(copies):
        target = repo / f"wine-{index:02d}"
        shutil.copytree(EXAMPLE.parent, target)
        kale = target / "kale.yaml"
        kale.write_text(kale.read_text().replace("name: wine-quality", f"name: wine-{index:02d}"))
    return repo


def many_notebooks(runs: int, copies: int, scratch: Path, jobs: bool) -> None:
    many_repo = copies_repository(scratch, copies)
    one = Command(
        "kfg render (1 copy)", kfg("render", ".", "-o", "deploy"), copies_repository(scratch, 1)
    )
    many = Command(f"kfg render ({copies} copies)", kfg("render", ".", "-o", "deploy"), many_repo)
    commands = [one, many]
    serial = None
    if jobs:
        serial = Command(
            f"kfg render -j 1 ({copies} copies)",
            kfg("render", ".", "-o", "deploy-serial", "-j", "1"),
            many_repo,
        )
        commands.append(serial)
    alternate(commands, runs)
    print(f"\nMany notebooks in one call ({os.cpu_count()} CPUs), {runs} alternating rounds:")
    for command in commands:
        print(command.line())
    print(f"  {copies} copies / 1 copy:                {ratio(many, one)}   (goal: at most 8x)")
    if serial is not None:
        print(f"  {copies} copies, serial / parallel:      {ratio(serial, many)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--copies", type=int, default=50, help="notebooks in one call")
    parser.add_argument(
        "--kale", action="store_true", help=f"also measure Kale {KALE_VERSION}'s compile"
    )
    parser.add_argument(
        "--serial", action="store_true", help="also measure the copies rendered with -j 1"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfg-bench-") as directory:
        scratch = Path(directory)
        one_notebook(args.runs, scratch, args.kale)
        many_notebooks(args.runs, args.copies, scratch, args.serial)


if __name__ == "__main__":
    main()
