"""A pipeline's PipelineVersion fits the API server, and `kfg validate` says when it will not.

etcd refuses requests over 1.5 MiB by default (etcd server flag `--max-request-bytes`,
default 1,572,864: etcd-io/etcd v3.6.4 server/embed/config.go DefaultMaxRequestBytes),
and the API server stores a PipelineVersion as one object.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kfg.core.load import load_pipeline
from kfg.diagnostics import Severity
from kfg.render.build import render
from kfg.render.size import ETCD_REQUEST_LIMIT, estimated_version_bytes
from tests.conftest import EXAMPLES
from tests.pipelines import chain


def _version_bytes(objects: list[dict[str, Any]]) -> int:
    version = next(o for o in objects if o["kind"] == "PipelineVersion")
    return len(json.dumps(version, separators=(",", ":")).encode("utf-8"))


def test_a_200_step_pipeline_fits_in_one_mebibyte(tmp_path: Path) -> None:
    result = chain(tmp_path, 200)
    assert result.pipeline and result.flow and result.notebook
    rendered = render(result.pipeline, result.flow, result.notebook, tmp_path)
    assert _version_bytes(rendered.objects) < 1024 * 1024
    assert not [d for d in result.diagnostics if d.code == "pipeline-size"]


@pytest.mark.parametrize(
    ("where", "steps", "runtime"),
    [("wine", 0, None), ("digits", 0, None), ("chain", 30, None), ("chain", 12, "embedded")],
)
def test_the_estimate_is_within_ten_percent_of_the_rendered_version(
    where: str, steps: int, runtime: str | None, tmp_path: Path
) -> None:
    if where == "chain":
        extra = {"runtime": runtime} if runtime else {}
        result = chain(tmp_path, steps, **extra)
        root = tmp_path
    else:
        result = load_pipeline(EXAMPLES / where / "kale.yaml")
        root = EXAMPLES.parent
    assert result.pipeline and result.flow and result.notebook
    actual = _version_bytes(render(result.pipeline, result.flow, result.notebook, root).objects)
    estimate = estimated_version_bytes(result.pipeline, result.flow, result.notebook)
    assert abs(estimate - actual) / actual < 0.10, (estimate, actual)


def test_validate_warns_with_the_size_when_the_version_would_be_refused(tmp_path: Path) -> None:
    result = chain(tmp_path, 60, runtime="embedded")
    assert result.ok and result.pipeline and result.flow and result.notebook
    warnings = [d for d in result.diagnostics if d.code == "pipeline-size"]
    assert len(warnings) == 1 and warnings[0].severity is Severity.WARNING
    message = warnings[0].message
    assert "refuses objects over 1.5 MiB" in message
    assert "60 step(s) embed the step runtime" in message and "runtime: mounted" in message
    said = re.search(r"about [\d.]+ MiB \(([\d,]+) bytes\)", message)
    assert said is not None, message
    rendered = render(result.pipeline, result.flow, result.notebook, tmp_path)
    actual = _version_bytes(rendered.objects)
    assert actual > ETCD_REQUEST_LIMIT  # the warning was right
    assert abs(int(said[1].replace(",", "")) - actual) / actual < 0.10


def test_examples_get_no_size_warning() -> None:
    for name in ("wine", "digits"):
        result = load_pipeline(EXAMPLES / name / "kale.yaml")
        assert not [d for d in result.diagnostics if d.code == "pipeline-size"]
