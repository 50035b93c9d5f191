"""How big a rendered pipeline is, by number of steps (issue 18.1).

The API server stores a PipelineVersion as one object: etcd refuses a request over
1.5 MiB by default (etcd's `--max-request-bytes`, 1,572,864), and kfg aims to keep a
200-step pipeline under 1 MiB. This script writes a chain notebook of N small steps (each
reads the previous step's value, like a real pipeline's data flow), renders it with the
real `kfg render`, and prints the size of the PipelineVersion document, of the IR file and
of everything else in the package, per N and per step.

    python benchmarks/pipeline_size.py [--steps 10 50 100 200] [--runtime embedded]

Nothing is timed: sizes are exact and the same on every machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
ETCD_LIMIT = 1_572_864


def chain_notebook(steps: int) -> dict[str, object]:
    cells: list[dict[str, object]] = [
        {
            "cell_type": "code",
            "id": "imports",
            "metadata": {},
            "source": "import math\n",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "id": "parameters",
            "metadata": {},
            "source": "scale = 2\n",
            "outputs": [],
            "execution_count": None,
        },
    ]
    for index in range(steps):
        if index == 0:
            body = "value_0 = [i * scale for i in range(100)]\n"
        else:
            body = (
                f"value_{index} = [math.sqrt(abs(v)) + {index} for v in value_{index - 1}]\n"
                f"print('step {index}', sum(value_{index}))\n"
            )
        cells.append(
            {
                "cell_type": "code",
                "id": f"s{index}",
                "metadata": {},
                "source": body,
                "outputs": [],
                "execution_count": None,
            }
        )
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def chain_config(steps: int, runtime: str | None) -> str:
    lines = [
        "apiVersion: kfg.dev/v1alpha1",
        "kind: NotebookPipeline",
        f"metadata: {{name: chain-{steps}}}",
        "spec:",
        "  notebook: chain.ipynb",
        "  image: python:3.11-slim",
        '  prelude: ["id:imports"]',
        '  parameters: {cell: "id:parameters"}',
    ]
    if runtime:
        lines.append(f"  runtime: {runtime}")
    lines.append("  steps:")
    for index in range(steps):
        lines += [f"    - name: s{index}", f'      cells: ["id:s{index}"]']
    return "\n".join(lines) + "\n"


def measure(steps: int, runtime: str | None, scratch: Path) -> dict[str, int]:
    folder = scratch / f"chain-{steps}"
    folder.mkdir()
    (folder / "chain.ipynb").write_text(json.dumps(chain_notebook(steps)), encoding="utf-8")
    (folder / "kale.yaml").write_text(chain_config(steps, runtime), encoding="utf-8")
    out = scratch / f"deploy-{steps}"
    kfg = Path(sys.executable).with_name("kfg")
    done = subprocess.run(
        [str(kfg), "render", str(folder / "kale.yaml"), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    if done.returncode != 0:
        raise SystemExit(f"kfg render failed for {steps} steps:\n{done.stderr}")
    import yaml

    version = 0
    for document in yaml.safe_load_all((out / "release" / "version.yaml").read_text()):
        if document and document.get("kind") == "PipelineVersion":
            # What the API server stores: the object as JSON (kubectl and controllers
            # send JSON; YAML's indentation is not part of it).
            version = len(json.dumps(document, separators=(",", ":")).encode())
    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*.yaml")}
    return {
        "version_json": version,
        "version_yaml": files["release/version.yaml"],
        "ir": files.get("pipeline.ir.yaml", 0),
        "package": sum(files.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--runtime", default=None, help="spec.runtime to render with")
    args = parser.parse_args()
    print(
        f"{'steps':>6} {'PipelineVersion JSON':>21} {'per step':>9} {'IR file':>10}"
        f" {'package':>10}  verdict"
    )
    with tempfile.TemporaryDirectory(prefix="kfg-size-") as scratch:
        for steps in args.steps:
            sizes = measure(steps, args.runtime, Path(scratch))
            json_size = sizes["version_json"]
            verdict = (
                "under 1 MiB"
                if json_size < MIB
                else "over 1 MiB"
                if json_size < ETCD_LIMIT
                else "REFUSED by etcd's default 1.5 MiB limit"
            )
            print(
                f"{steps:>6} {json_size:>21,} {json_size // steps:>9,} {sizes['ir']:>10,}"
                f" {sizes['package']:>10,}  {verdict}"
            )


if __name__ == "__main__":
    main()
