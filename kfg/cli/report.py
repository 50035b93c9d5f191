"""Render diagnostics for people (text), programs (JSON) and GitHub Actions (annotations)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from kfg.config.model import DEFAULT_REQUESTS, Step
from kfg.diagnostics import Diagnostic, Severity

FORMATS = ("text", "json", "github")


def text(diagnostics: Sequence[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        where = f" (at {d.field})" if d.field else ""
        lines.append(
            f"{d.file}:{d.line}:{d.column}: {d.severity.value}: {d.message}{where} [{d.code}]"
        )
    return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def defaulted_requests(steps: Sequence[Step]) -> str:
    """`, N steps with default requests (cpu 100m, memory 256Mi)` where any, else ""."""
    count = sum(bool(step.resources.defaulted()) for step in steps)
    if not count:
        return ""
    values = ", ".join(f"{name} {value}" for name, value in DEFAULT_REQUESTS.items())
    return f", {plural(count, 'step')} with default requests ({values})"


def summary(diagnostics: Sequence[Diagnostic], files: int) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    if not diagnostics:
        return f"{plural(files, 'file')} valid"
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')} in {plural(files, 'file')}"


def as_json(diagnostics: Sequence[Diagnostic], files: Sequence[str], valid: bool) -> str:
    payload = {
        "valid": valid,
        "files": list(files),
        "errors": sum(d.severity is Severity.ERROR for d in diagnostics),
        "warnings": sum(d.severity is Severity.WARNING for d in diagnostics),
        "diagnostics": [
            {
                "severity": d.severity.value,
                "code": d.code,
                "message": d.message,
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "field": d.field,
            }
            for d in diagnostics
        ],
    }
    return json.dumps(payload, indent=2)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(diagnostics: Sequence[Diagnostic]) -> str:
    """Workflow commands that GitHub turns into annotations on the pull request's lines."""
    lines = []
    for d in diagnostics:
        props = ",".join(
            [
                f"file={_escape_property(d.file)}",
                f"line={d.line}",
                f"col={d.column}",
                f"title={_escape_property(f'kfg {d.code}')}",
            ]
        )
        lines.append(f"::{d.severity.value} {props}::{_escape_data(d.message)}")
    return "\n".join(lines)
