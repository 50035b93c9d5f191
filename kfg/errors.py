"""The one base of every failure kfg expects, and what a command's exit status means.

An expected failure (bad input, an unusable environment, a refusal from a server) raises a
`KfgError` whose message is written for the user; the CLI prints it on one line and exits
with its `exit_code`: 1 for invalid input, 2 for a usage error. Anything else that escapes
a command is a bug in kfg: exit 3, one line saying so and where the traceback was written.
"""

from __future__ import annotations

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_BUG = 3


class KfgError(Exception):
    """An expected failure: its message is for the user, as it is."""

    exit_code = EXIT_INVALID


class UsageError(KfgError):
    """The command was called wrongly (an unknown option value, a missing file)."""

    exit_code = EXIT_USAGE
