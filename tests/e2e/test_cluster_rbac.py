"""Least privilege: the launcher's ServiceAccount may do exactly what the launcher does.

In a multi-user Kubeflow, the KFP API server authorises each call by asking Kubernetes
whether the caller's identity may perform a verb on a `pipelines.kubeflow.org` resource in
the namespace (a SubjectAccessReview). Here the rendered launcher.yaml is applied to a real
API server with RBAC on, and the ServiceAccount's own token asks the same questions
(SelfSubjectAccessReview) for every verb KFP 2.17.0 checks.
"""

from __future__ import annotations

import ast
import itertools
from typing import Any

import pytest

from tests.conftest import REPO
from tests.e2e.cluster import ControlPlane
from tests.e2e.conftest import Repository

GROUP = "pipelines.kubeflow.org"

# kubeflow/pipelines 2.17.0 backend/src/apiserver/common/const.go: every resource and verb
# the KFP API server authorises (RbacResourceType*, RbacResourceVerb*).
KFP_RESOURCES = [
    "pipelines",
    "experiments",
    "runs",
    "jobs",
    "viewers",
    "visualizations",
    "scheduledworkflows",
    "workflows",
]
KFP_VERBS = [
    "archive",
    "update",
    "create",
    "delete",
    "disable",
    "enable",
    "get",
    "list",
    "retry",
    "terminate",
    "unarchive",
    "reportMetrics",
    "readArtifact",
    "report",
]

# The kfp.Client methods kfg/launcher/runs.py uses, and what KFP 2.17.0 checks for each:
# - get_pipeline_id: kfp 2.17.0 client.py lists pipelines with a name filter;
#   backend/src/apiserver/server/pipeline_server.go listPipelines, Verb list on pipelines.
# - list_pipeline_versions: pipeline_server.go listPipelineVersions -> canAccessPipeline,
#   Verb list, Resource pipelines (versions are authorised as their pipeline).
# - create_experiment: kfp client.py create_experiment calls get_experiment first, which
#   lists experiments with a name filter; experiment_server.go listExperiments (list) and
#   createExperiment (create).
# - run_pipeline: run_server.go createRun, Verb create on runs.
# - get_run: run_server.go getRun, Verb get on runs.
# - terminate_run: run_server.go terminateRun, Verb terminate on runs.
# - _run_api (the raw GETs of `Launcher.get`, reading a run's artifacts): KFP 2.17.0 serves
#   artifact content only through run_artifact_server.go, Verb readArtifact on runs.
NEEDS: dict[str, list[tuple[str, str]]] = {
    "get_pipeline_id": [("pipelines", "list")],
    "list_pipeline_versions": [("pipelines", "list")],
    "create_experiment": [("experiments", "list"), ("experiments", "create")],
    "run_pipeline": [("runs", "create")],
    "get_run": [("runs", "get")],
    "terminate_run": [("runs", "terminate")],
    "_run_api": [("runs", "readArtifact")],
}

PACKAGES_WITH_LAUNCHER = ["digits-mlp", "full-pipeline"]


def launcher_client_calls() -> set[str]:
    """Every `self.client.NAME` the launcher code refers to."""
    tree = ast.parse((REPO / "kfg" / "launcher" / "runs.py").read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "client"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }


def test_every_kfp_call_of_the_launcher_is_in_the_table() -> None:
    assert launcher_client_calls() <= set(NEEDS), (
        "the launcher calls kfp.Client methods this test does not know the KFP permissions"
        f" of: {sorted(launcher_client_calls() - set(NEEDS))}"
    )


def _needed() -> set[tuple[str, str]]:
    calls = launcher_client_calls()
    return {need for call in calls for need in NEEDS[call]}


class Identity:
    """The launcher's ServiceAccount, speaking with its own token."""

    def __init__(self, plane: ControlPlane, namespace: str, account: str) -> None:
        self.api = plane.as_token(plane.token(namespace, account))
        self.namespace = namespace

    def can(self, attributes: dict[str, Any]) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        answer = self.api.request(
            "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review
        )
        return bool(answer["status"].get("allowed"))

    def kfp(self, resource: str, verb: str, namespace: str | None = None) -> bool:
        # KFP sets Group, Version v1beta1, Resource, Verb, Namespace (and Name for one object).
        return self.can(
            {
                "group": GROUP,
                "version": "v1beta1",
                "resource": resource,
                "verb": verb,
                "namespace": namespace or self.namespace,
            }
        )


@pytest.fixture(scope="module", params=PACKAGES_WITH_LAUNCHER)
def launcher(
    request: pytest.FixtureRequest, control_plane: ControlPlane, rendered: Repository
) -> tuple[Identity, dict[str, Any]]:
    package: str = request.param
    namespace = f"rbac-{package}"
    api = control_plane.api
    api.namespace(namespace)
    objects = [
        o
        for o in rendered.objects(package)
        if o["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
    ]
    assert {o["kind"] for o in objects} == {"ServiceAccount", "Role", "RoleBinding"}
    for obj in objects:
        api.apply(obj, namespace=namespace)
    [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
    [role] = [o for o in objects if o["kind"] == "Role"]
    return Identity(control_plane, namespace, account["metadata"]["name"]), role


def test_the_launcher_may_do_everything_it_does(launcher: tuple[Identity, dict[str, Any]]) -> None:
    identity, _ = launcher
    refused = sorted(need for need in _needed() if not identity.kfp(*need))
    assert not refused, f"the rendered Role refuses what the launcher does: {refused}"


def test_the_launcher_may_do_nothing_else_in_kfp(launcher: tuple[Identity, dict[str, Any]]) -> None:
    identity, _ = launcher
    needed = _needed()
    extra = sorted(
        (resource, verb)
        for resource, verb in itertools.product(KFP_RESOURCES, KFP_VERBS)
        if (resource, verb) not in needed and identity.kfp(resource, verb)
    )
    assert not extra, f"the rendered Role allows more than the launcher does: {extra}"


def test_the_role_names_only_what_kfp_authorises(launcher: tuple[Identity, dict[str, Any]]) -> None:
    """A rule KFP never asks about grants nothing today and something if KFP starts to."""
    _, role = launcher
    unused = sorted(
        f"{resource}:{verb}"
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if resource not in KFP_RESOURCES or verb not in KFP_VERBS
    )
    assert not unused, f"rules KFP 2.17.0 never checks: {unused}"


def test_the_launcher_may_not_touch_the_cluster(launcher: tuple[Identity, dict[str, Any]]) -> None:
    identity, _ = launcher
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    kinds = [
        ("", "pods"),
        ("", "secrets"),
        ("", "configmaps"),
        ("", "serviceaccounts"),
        ("batch", "jobs"),
        ("kubeflow.org", "experiments"),
        ("kubeflow.org", "trials"),
        (GROUP, "pipelines"),  # the Kubernetes objects, not the KFP API
        (GROUP, "pipelineversions"),
        ("rbac.authorization.k8s.io", "roles"),
    ]
    # KFP authorises its API's pipelines with the group and resource of the Pipeline CRD,
    # so the `pipelines list` the launcher needs also lets it list Pipeline objects.
    shared = {(GROUP, "pipelines", verb) for resource, verb in _needed() if resource == "pipelines"}
    allowed = sorted(
        f"{group or 'core'}/{resource}:{verb}"
        for (group, resource), verb in itertools.product(kinds, verbs)
        if (group, resource, verb) not in shared
        and identity.can(
            {"group": group, "resource": resource, "verb": verb, "namespace": identity.namespace}
        )
    )
    token = {
        "resource": "serviceaccounts",
        "subresource": "token",
        "verb": "create",
        "namespace": identity.namespace,
    }
    if identity.can(token):
        allowed.append("serviceaccounts/token:create")
    assert not allowed, f"the launcher's ServiceAccount may act on Kubernetes objects: {allowed}"


def test_the_launchers_rights_stop_at_its_namespace(
    launcher: tuple[Identity, dict[str, Any]], control_plane: ControlPlane
) -> None:
    identity, _ = launcher
    control_plane.api.namespace("rbac-elsewhere")
    granted = sorted(need for need in _needed() if identity.kfp(*need, namespace="rbac-elsewhere"))
    assert not granted, f"the launcher may act in another namespace: {granted}"
