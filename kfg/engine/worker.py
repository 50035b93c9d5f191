"""One step in its own process: `python -m kfg.engine.worker SPEC.json`.

The local engine runs every step as a separate process, as the cluster runs every step in
its own pod, with the same runtime code; the spec file says what to load, run and save.
Exit status 0 on success, 1 with a one-line cause on stderr when the step failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kfg.runtime.step import StepFailed, run_step


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result_path = Path(spec.pop("result"))
    try:
        metrics = run_step(**spec)
    except StepFailed as exc:
        sys.stderr.write(f"kfg: {exc}\n")
        return 1
    result_path.write_text(json.dumps({"metrics": metrics}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
