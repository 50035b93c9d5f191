"""Least privilege: the launcher's ServiceAccount may do exactly what the launcher does.

In a multi-user Kubeflow, the KFP API server authorises each call by asking Kubernetes
whether the caller's identity may perform a verb on a `pipelines.kubeflow.org` resource in
the namespace (a SubjectAccessReview). Here the rendered launcher.yaml is applied to a real
API server with RBAC on, and the ServiceAccount's own token asks the same questions
(SelfSubjectAccessReview) for every verb KFP 2.17.0 checks.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

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

# What the launcher calls is derived in tests/launcher/test_trial.py
# (test_the_role_grants_exactly_what_the_launcher_uses: a run against the KFP 2.17.0 stand-in,
# each request mapped to what backend/src/apiserver/server/*_server.go authorises) and
# proved equal to kfg.render.launcher.RULES. Here that Role meets a real RBAC authorizer.
PACKAGES_WITH_LAUNCHER = ["digits-mlp", "full-pipeline"]
# Outside KFP, the launcher reads its run's step logs (kfg/launcher/podlogs.py).
CLUSTER_NEEDS = {("", "pods", "", "list"), ("", "pods", "log", "get")}


def _needed() -> set[tuple[str, str]]:
    from kfg.render.launcher import RULES

    return {
        (resource, verb)
        for rule in RULES
        if GROUP in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


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
        if GROUP in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if resource not in KFP_RESOURCES or verb not in KFP_VERBS
    )
    others = sorted(
        (group, *resource.partition("/")[::2], verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        if group != GROUP
        for resource in rule["resources"]
        for verb in rule["verbs"]
    )
    assert {(g, r, sub, v) for g, r, sub, v in others} == CLUSTER_NEEDS
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
    shared |= {(group, resource, verb) for group, resource, sub, verb in CLUSTER_NEEDS if not sub}
    allowed = sorted(
        f"{group or 'core'}/{resource}:{verb}"
        for (group, resource), verb in itertools.product(kinds, verbs)
        if (group, resource, verb) not in shared
        and identity.can(
            {"group": group, "resource": resource, "verb": verb, "namespace": identity.namespace}
        )
    )
    for group, resource, sub, verb in sorted(CLUSTER_NEEDS):
        attributes = {"group": group, "resource": resource, "verb": verb}
        granted = identity.can({**attributes, "subresource": sub, "namespace": identity.namespace})
        assert granted, f"the launcher needs {resource}/{sub}:{verb} to read its run's logs"
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
