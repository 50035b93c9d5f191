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

                warm.prestart(Path(argument))
            return


def main() -> None:
    _prestart(sys.argv[1:])
    from kfg.cli.app import main as run

    run()
