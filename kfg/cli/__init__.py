"""The `kfg` command line: each command parses its arguments and calls the core.

The application lives in `kfg.cli.app`; this module only starts it, after one guess made
before typer and the command's own imports are loaded (about 0.3 s): see `_prestart`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

# Commands whose steps fork from a warm server (kfg.engine.warm).
STEP_COMMANDS = ("run", "tune")


def _prestart(arguments: list[str]) -> None:
    """Start the warm server `kfg run`/`kfg tune` of a kale.yaml used last time, now.

    The server's imports (pandas, scikit-learn: a second or more) then overlap the CLI's
    own start instead of following it. This is a guess and only a guess: the command
    parses its arguments properly afterwards and starts the server it really needs, so a
    wrong guess (a `.yaml` that is an option's value, a changed prelude) costs background
    CPU, never a result. Hence it never fails the command.
    """
    if not arguments or arguments[0] not in STEP_COMMANDS:
        return
    for argument in arguments[1:]:
        if argument.startswith("-") or "=" in argument:
            continue
        if argument.endswith((".yaml", ".yml")):
            with contextlib.suppress(Exception):  # see above: the command starts its own
                from kfg.engine import warm

                warm.prestart(Path(argument), arguments[0])
            return


def main() -> None:
    _prestart(sys.argv[1:])
    from kfg.cli.app import main as run

    run()


def console() -> None:
    """The `kfg` program (its console script and `python -m kfg`): `main`, then the process
    ends without the interpreter freeing every module's objects one by one.

    That teardown is pure waste for a program whose work is done: 13 ms after `kfg
    validate` and 40 ms after `kfg tune` (Optuna's modules), about 2% of a short tune and
    5% of a render. What must happen at exit still does, in the usual order: every atexit
    handler runs (logging's flush, coverage's data, multiprocessing's cleanup), then the
    standard streams are flushed, then the process ends with the command's status. When
    that cannot be done safely (a thread still running, a status that is no number, a
    stream that cannot be flushed) the interpreter exits the usual way. `main` stays the
    function to call from other Python code, which this would end.
    """
    try:
        main()
    except SystemExit as exc:
        _leave(exc.code)
        raise
    _leave(0)


def _leave(code: object) -> None:
    import atexit
    import os
    import threading

    status = 0 if code is None else code
    if type(status) is not int or not 0 <= status <= 255:
        return
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        return  # the interpreter joins it first; so would we have to
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # e.g. a closed pipe: Python reports it as it always has
    os._exit(status)
