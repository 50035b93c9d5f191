"""The local engine against the alternatives, on the examples (issue 5's goals).

1. `kfg run` cold against the notebook executed top to bottom by nbclient (same cells):
   goal no slower, faster where parallel branches exist.
2. `kfg run` warm (nothing changed): goal under 10% of cold.
3. `kfg tune` with N trials against a papermill sweep of N full notebook executions:
   goal at least 4x faster at N=8; the ratio is reported for every N given.
4. The same pipeline through kfp.local with SubprocessRunner(use_venv=False).

Wall times of the real commands in a scratch git repository; one run each (they take
seconds to minutes). `python benchmarks/local_engine.py [--trials 4 8] [--skip-kfp]`.
The tuning example is the wine pipeline with n_estimators and max_depth tuned (random
search), because tuning reaches only the forest step and what follows it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TUNING = """  tuning:
    objective: {metric: forest-accuracy, type: maximize}
    algorithm: {name: random, settings: {random_state: 1}}
    maxTrials: 8
    parallelTrials: 2
    parameters:
      n_estimators: {type: int, min: 20, max: 300, step: 20}
      max_depth: {type: int, min: 2, max: 12}
"""


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def nbclient_seconds(config: Path, parameters: dict[str, object] | None = None) -> float:
    from tests.reference import notebook_metrics

    start = time.perf_counter()
    notebook_metrics(config)
    return time.perf_counter() - start


def papermill_sweep(workdir: Path, notebook: Path, skip: set[int], trials: int) -> float:
    """N executions of the notebook with papermill, each with other n_estimators/max_depth."""
    import nbformat
    import papermill

    book = nbformat.read(str(notebook), as_version=4)
    book.cells = [c for i, c in enumerate(book.cells, start=1) if i not in skip]
    for cell in book.cells:  # papermill injects values after the cell tagged "parameters"
        if cell.cell_type == "code" and cell.source.startswith("test_size"):
            cell.metadata["tags"] = ["parameters"]
    source = workdir / "sweep.ipynb"
    nbformat.write(book, str(source))
    start = time.perf_counter()
    for index in range(trials):
        papermill.execute_notebook(
            str(source),
            str(workdir / f"sweep-{index}.ipynb"),
            parameters={"n_estimators": 20 + 20 * index, "max_depth": 2 + index % 10},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(workdir),
        )
    return time.perf_counter() - start


def kfp_local_seconds(workdir: Path, config: Path) -> float:
    from importlib.metadata import version

    text = config.read_text()
    text = text.replace("pandas==2.2.3", f"pandas=={version('pandas')}")
    text = text.replace("scikit-learn==1.5.2", f"scikit-learn=={version('scikit-learn')}")
    config.write_text(text)
    out = workdir / "rendered"
    subprocess.run(
        [sys.executable, "-m", "kfg", "render", str(config), "-o", str(out)],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    runner = (
        "import sys\nfrom kfp import components, local\n"
        "local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])\n"
        "components.load_component_from_file(sys.argv[1])()\n"
    )
    return timed(
        [sys.executable, "-c", runner, str(out / "pipeline.ir.yaml"), str(workdir / "kfp-root")],
        workdir,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, nargs="+", default=[8])
    parser.add_argument("--skip-kfp", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfg-engine-bench-") as directory:
        work = Path(directory)
        (work / ".git").mkdir()
        shutil.copytree(REPO / "examples" / "wine", work / "wine")
        config = work / "wine" / "kale.yaml"
        kfg = [sys.executable, "-m", "kfg"]

        notebook = nbclient_seconds(config)
        cold = timed([*kfg, "run", str(config), "--no-cache"], work)
        warm = timed([*kfg, "run", str(config)], work)
        print(
            f"1. wine: kfg run cold {cold:6.2f} s   nbclient top to bottom {notebook:6.2f} s"
            f"   ({notebook / cold:.2f}x)"
        )
        print(f"2. wine: kfg run warm {warm:6.2f} s   = {100 * warm / cold:.1f}% of cold")

        tuned = work / "tuned"
        shutil.copytree(REPO / "examples" / "wine", tuned)
        (tuned / "kale.yaml").write_text((tuned / "kale.yaml").read_text() + TUNING)
        skip = {8, 9}
        for trials in args.trials:
            cache = work / f"cache-{trials}"
            kfg_tune = timed(
                [
                    *kfg,
                    "tune",
                    str(tuned / "kale.yaml"),
                    "--trials",
                    str(trials),
                    "--cache-dir",
                    str(cache),
                    "--json",
                ],
                work,
            )
            sweep = papermill_sweep(work, tuned / "wine.ipynb", skip, trials)
            print(
                f"3. tune N={trials:<3} kfg tune {kfg_tune:6.2f} s   papermill sweep"
                f" {sweep:6.2f} s   ({sweep / kfg_tune:.2f}x)"
            )
        if not args.skip_kfp:
            seconds = kfp_local_seconds(work, config)
            print(
                f"4. wine: kfp.local (SubprocessRunner, use_venv=False) {seconds:6.2f} s"
                f"   vs kfg run cold {cold:6.2f} s   ({seconds / cold:.2f}x)"
            )
        summary = json.dumps({"cold": cold, "warm": warm, "notebook": notebook})
        print(f"# {summary}")


if __name__ == "__main__":
    main()
