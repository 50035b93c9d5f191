from __future__ import annotations

import json

from kfg.cli import report
from kfg.diagnostics import Diagnostic, Severity, did_you_mean, has_errors

ERR = Diagnostic(Severity.ERROR, "bad", "50% off:\nnext, line", "dir,a/k:1.yaml", 3, 4, "spec.x")
WARN = Diagnostic(Severity.WARNING, "meh", "careful", "k.yaml", 1, 1)


def test_github_annotations_escape_data_and_properties() -> None:
    assert report.github([ERR]) == (
        "::error file=dir%2Ca/k%3A1.yaml,line=3,col=4,title=kfg bad::50%25 off:%0Anext, line"
    )
    assert report.github([WARN]).startswith("::warning file=k.yaml,line=1,col=1,")


def test_text_and_summary() -> None:
    assert report.text([WARN]) == "k.yaml:1:1: warning: careful [meh]"
    assert report.summary([ERR, WARN], 2) == "1 error, 1 warning in 2 files"
    assert report.summary([], 1) == "1 file valid"


def test_json() -> None:
    payload = json.loads(report.as_json([ERR], ["k.yaml"], False))
    assert payload["errors"] == 1 and payload["diagnostics"][0]["field"] == "spec.x"


def test_helpers() -> None:
    assert did_you_mean("resource", ["resources", "image"]) == "; did you mean `resources`?"
    assert did_you_mean("zzz", ["resources"]) == ""
    assert has_errors([WARN]) is False and has_errors([WARN], strict=True) is True
