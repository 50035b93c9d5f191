"""The one shape every problem kfg finds takes: severity, file, line, column, message.

Everything that inspects user input returns these instead of raising, so a command can
report all mistakes at once and the same findings can be printed as text, JSON, GitHub
annotations or (later) KRM function results.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    file: str
    line: int = 1
    column: int = 1
    field: str = ""

    def sort_key(self) -> tuple[str, int, int]:
        """Order by place; findings at the same place keep the order they were found in."""
        return (self.file, self.line, self.column)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ` did you mean `x`?` suffix for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def has_errors(diagnostics: Sequence[Diagnostic], *, strict: bool = False) -> bool:
    """Whether the findings make the input invalid; with `strict`, warnings count too."""
    return any(d.severity is Severity.ERROR or strict for d in diagnostics)
