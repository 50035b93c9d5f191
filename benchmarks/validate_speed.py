"""How long `kfg validate` takes on one kale.yaml: wall time of the real command, and in-process.

Goal (issue 2): well under 300 ms wall for one file on a 2-core machine. Run with
`make bench` or `python benchmarks/validate_speed.py [KALE_YAML] [--runs N]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wall_times(target: Path, runs: int) -> list[float]:
    command = [sys.executable, "-m", "kfg", "validate", str(target)]
    subprocess.run(command, check=True, capture_output=True)  # warm the bytecode cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def in_process_times(target: Path, runs: int) -> list[float]:
    from kfg.core.load import load_pipeline

    load_pipeline(target)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = load_pipeline(target)
        times.append(time.perf_counter() - start)
        assert result.ok
    return times


def report(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    median = statistics.median(ms)
    print(f"{label:<34} median {median:7.1f} ms   p95 {p95:7.1f} ms   min {ms[0]:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    targets = args.targets or sorted((REPO / "examples").glob("*/kale.yaml"))
    for target in targets:
        name = target.relative_to(REPO) if target.is_relative_to(REPO) else target
        report(f"kfg validate {name}", wall_times(target, args.runs))
        report("  in-process load_pipeline", in_process_times(target, args.runs * 5))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"{'(python startup alone)':<34} {1000 * (time.perf_counter() - start):7.1f} ms")


if __name__ == "__main__":
    main()
