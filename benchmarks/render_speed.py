"""How long `kfg render` takes: each example, and 50 notebooks in one call.

Goals (issue 3): at least 3x faster than Kale 2.3's compile of its 9-step Titanic example
(about 4 s on this machine, so under 1.3 s for the 9-step wine example), and 50 notebooks
in one `kfg render` call in under 10 s. Wall times of the real command, after one warm-up
run so bytecode caches are filled. Run with `make bench` or
`python benchmarks/render_speed.py [--runs N] [--copies N]`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KALE_TITANIC_SECONDS = 4.0


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def render_example(name: str, runs: int, scratch: Path) -> list[float]:
    config = REPO / "examples" / name / "kale.yaml"
    command = [sys.executable, "-m", "kfg", "render", str(config), "-o", str(scratch / name)]
    timed(command, REPO)
    return [timed(command, REPO) for _ in range(runs)]


def render_copies(copies: int, scratch: Path) -> float:
    repo = scratch / "many"
    (repo / ".git").mkdir(parents=True)
    for index in range(copies):
        target = repo / f"wine-{index:02d}"
        shutil.copytree(REPO / "examples" / "wine", target)
        kale = target / "kale.yaml"
        kale.write_text(kale.read_text().replace("name: wine-quality", f"name: wine-{index:02d}"))
    command = [sys.executable, "-m", "kfg", "render", ".", "-o", "deploy"]
    timed(command, repo)
    return timed(command, repo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--copies", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfg-bench-") as directory:
        scratch = Path(directory)
        for name in ("wine", "digits"):
            times = render_example(name, args.runs, scratch)
            median = statistics.median(times)
            print(
                f"kfg render examples/{name:<8} median {median:6.2f} s   min {min(times):6.2f} s"
                f"   ({KALE_TITANIC_SECONDS / median:4.1f}x faster than Kale's ~4 s)"
            )
        seconds = render_copies(args.copies, scratch)
        print(
            f"kfg render {args.copies} notebooks        {seconds:6.2f} s in one call"
            f"   ({seconds / args.copies * 1000:.0f} ms per notebook; goal under 10 s)"
        )


if __name__ == "__main__":
    main()
