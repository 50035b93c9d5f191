"""One step in its own process: `python -m kfg.engine.worker SPEC.json`.

The local engine runs every step as a separate process, as the cluster runs every step in
its own pod, with the same runtime code; the spec file says what to load, run and save.
Exit status 0 on success, 1 with a one-line cause on stderr when the step failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from kfg.engine.cache import DIGESTS
from kfg.runtime.step import StepFailed, run_step


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result_path = Path(spec.pop("result"))
    # The runtime hashes each output while writing it; the cache reads the digests here.
    spec.setdefault("digests", str(result_path.with_name(DIGESTS)))
    try:
        metrics = run_step(**spec)
    except StepFailed as exc:
        sys.stderr.write(f"kfg: {exc}\n")
        return 1
    result_path.write_text(json.dumps({"metrics": metrics}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


def run_in_child(spec: str, log: str, before_exit: Callable[[int], None] | None = None) -> None:
    """Entry point of a step forked from the engine's warm forkserver.

    The child leaves the terminal's process group (Ctrl-C reaches only kfg, which then
    stops its steps) and writes everything it prints to the step's log. `before_exit` runs
    last, after the step's result is written, whatever happened, with the exit status.
    """
    os.setsid()
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    code = 1
    try:
        code = main(["worker", spec])
    except BaseException:  # pragma: no cover - the runtime reports the step's own errors
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if before_exit is not None:
            with contextlib.suppress(Exception):
                before_exit(code)
        os._exit(code)
