"""A real kube-apiserver accepts every rendered object, and stores every field kfg wrote.

The API server validates custom resources against their CRDs' structural schemas and
prunes unknown fields silently, unless the request asks for strict field validation; core
objects are validated by their own API. Each object is server-side applied (as Argo CD with
ServerSideApply and Flux do) with `fieldValidation=Strict`, and what the server returns as
stored is compared with what was sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kfg.render.build import render
from kfg.render.package import write
from tests.e2e.cluster import ApiError, ControlPlane
from tests.e2e.conftest import PACKAGES, Repository, kustomize
from tests.e2e.diffs import lost, wave
from tests.pipelines import chain


@pytest.mark.parametrize("package", PACKAGES)
def test_every_rendered_object_is_accepted_and_stored_as_sent(
    package: str, control_plane: ControlPlane, rendered: Repository
) -> None:
    api = control_plane.api
    namespace = f"accept-{package}"
    api.namespace(namespace)
    objects = sorted(rendered.objects(package), key=wave)
    assert objects
    problems = []
    for obj in objects:
        subject = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            stored = api.apply(obj, namespace=namespace)
        except ApiError as exc:
            problems.append(f"{subject}: rejected: {exc}")
            continue
        problems += [f"{subject} {where}" for where in lost(obj, stored)]
        # What a later read returns, not only the apply response.
        problems += [f"{subject} (read) {where}" for where in lost(obj, api.read(stored))]
    assert not problems, "\n".join(problems)


def test_a_field_the_schema_lacks_is_caught(
    control_plane: ControlPlane, rendered: Repository
) -> None:
    """Server-side apply refuses a field the CRD does not declare; a plain create without
    strict validation prunes it silently, and the comparison above sees the loss."""
    api = control_plane.api
    api.namespace("accept-negative")
    [pipeline] = [o for o in rendered.objects("wine-quality") if o["kind"] == "Pipeline"]
    pipeline["spec"]["notAField"] = "x"
    with pytest.raises(ApiError, match="notAField"):
        api.apply(pipeline, namespace="accept-negative")
    stored = api.request(
        "POST",
        api.path(pipeline, "accept-negative", name=False),
        pipeline,
        query={"fieldValidation": "Ignore"},
    )
    assert list(lost(pipeline, stored)) == [".spec.notAField: dropped"]


def test_a_200_step_pipeline_is_stored_and_a_45_step_embedded_one_is_refused(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The size goal proven on the real store: etcd (v3.6.4, default
    `--max-request-bytes` 1.5 MiB, server/embed/config.go DefaultMaxRequestBytes) refuses a
    PipelineVersion that embeds the runtime in 45 steps, and stores one of 200 steps that
    mounts it. (Past 2 MiB the API server's own etcd client refuses to send it first.)"""
    api = control_plane.api
    namespace = "accept-size"
    api.namespace(namespace)
    for steps, spec, accepted in ((200, {}, True), (45, {"runtime": "embedded"}, False)):
        folder = tmp_path / f"chain-{steps}"
        folder.mkdir()
        result = chain(folder, steps, **spec)
        assert result.pipeline and result.flow and result.notebook
        package = render(result.pipeline, result.flow, result.notebook, folder).package
        write(package, folder / "deploy")
        for obj in sorted(kustomize(folder / "deploy"), key=wave):
            if obj["kind"] == "PipelineVersion" and not accepted:
                with pytest.raises(ApiError, match=r"request is too large|larger than max"):
                    api.apply(obj, namespace=namespace)
                continue
            stored = api.apply(obj, namespace=namespace)
            assert not list(lost(obj, stored)), obj["kind"]
