"""Collects diagnostics for one kale.yaml, placing each at the YAML node it is about."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfg.config.schema import field_name
from kfg.diagnostics import Diagnostic, Severity, has_errors
from kfg.files.yamlsource import Path, Positions


@dataclass
class Findings:
    file: str
    positions: Positions
    items: list[Diagnostic] = field(default_factory=list)

    def add(
        self, severity: Severity, path: Path, code: str, message: str, *, key: bool = False
    ) -> None:
        pos = self.positions.of(path, key=key)
        self.items.append(
            Diagnostic(severity, code, message, self.file, pos.line, pos.column, field_name(path))
        )

    def error(self, path: Path, code: str, message: str, *, key: bool = False) -> None:
        self.add(Severity.ERROR, path, code, message, key=key)

    def warning(self, path: Path, code: str, message: str, *, key: bool = False) -> None:
        self.add(Severity.WARNING, path, code, message, key=key)

    def line(self, path: Path) -> int:
        return self.positions.of(path).line

    @property
    def failed(self) -> bool:
        return has_errors(self.items)
