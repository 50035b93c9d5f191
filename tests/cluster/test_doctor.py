"""`kfg doctor` against a loopback Kubernetes API: each check present, missing, and its fix.

The fake serves discovery documents, objects by path and SelfSubjectAccessReview, shaped
as the Kubernetes API answers them; what the objects hold follows the upstream releases
cited at each one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfg.cluster.doctor import (
    LAUNCHER_RULES,
    LAUNCHER_SIDECAR,
    MISSING,
    OK,
    UNKNOWN,
    WARN,
    KubeApi,
    Needs,
    Report,
    _go_flag,
    diagnose,
    needs_of,
)
from tests.conftest import EXAMPLES, REPO

NAMESPACE = "team-a"
KF = "kubeflow"

# kubeflow/katib v0.19.0 manifests/v1beta1/installs/katib-standalone/katib-config.yaml
# (its structure; trimmed to the entries these tests look at).
KATIB_CONFIG: dict[str, Any] = {
    "apiVersion": "config.kubeflow.org/v1beta1",
    "kind": "KatibConfig",
    "init": {"controller": {"trialResources": ["Job.v1.batch", "TFJob.v1.kubeflow.org"]}},
    "runtime": {
        "metricsCollectors": [
            {"kind": "StdOut", "image": "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0"}
        ],
        "suggestions": [
            {"algorithmName": "random", "image": "ghcr.io/kubeflow/katib/suggestion-hyperopt:v0.19.0"},
            {"algorithmName": "tpe", "image": "ghcr.io/kubeflow/katib/suggestion-hyperopt:v0.19.0"},
        ],
        "earlyStoppings": [
            {
                "algorithmName": "medianstop",
                "image": "ghcr.io/kubeflow/katib/earlystopping-medianstop:v0.19.0",
            }
        ],
    },
}  # fmt: skip


def resource_list(group_version: str, *names: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [{"name": n, "namespaced": True, "kind": n.title()} for n in names],
    }


def healthy() -> dict[str, Any]:
    """A Kubeflow 1.11-like cluster set up as docs/cluster.md says."""
    return {
        "/apis/pipelines.kubeflow.org/v2beta1": resource_list(
            "pipelines.kubeflow.org/v2beta1", "pipelines", "pipelineversions"
        ),
        "/apis/kubeflow.org/v1beta1": resource_list(
            "kubeflow.org/v1beta1", "experiments", "suggestions", "trials"
        ),
        "/apis/kubeflow.org/v1alpha1": resource_list("kubeflow.org/v1alpha1", "poddefaults"),
        "/apis/snapshot.storage.k8s.io/v1": resource_list(
            "snapshot.storage.k8s.io/v1",
            "volumesnapshotclasses",
            "volumesnapshotcontents",
            "volumesnapshots",
        ),
        "/apis/cert-manager.io/v1": resource_list("cert-manager.io/v1", "certificates", "issuers"),
        # kubeflow/pipelines 2.17.0 manifests/kustomize/env/cert-manager/
        # platform-agnostic-multi-user-k8s-native/patches/deployment.yaml
        f"/apis/apps/v1/namespaces/{KF}/deployments/ml-pipeline": {
            "kind": "Deployment",
            "metadata": {"name": "ml-pipeline", "namespace": KF},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ml-pipeline-api-server",
                                "command": ["/bin/apiserver"],
                                "args": [
                                    "--config=/config",
                                    "--sampleconfig=/config/sample_config.json",
                                    "-logtostderr=true",
                                    "--webhookTLSCertPath=/etc/webhook/certs/tls.crt",
                                    "--webhookTLSKeyPath=/etc/webhook/certs/tls.key",
                                    "--pipelinesStoreKubernetes=true",
                                ],
                            }
                        ]
                    }
                }
            },
        },
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
        "pipelineversions.pipelines.kubeflow.org": {"kind": "MutatingWebhookConfiguration"},
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
        "pipelineversions.pipelines.kubeflow.org": {"kind": "ValidatingWebhookConfiguration"},
        f"/api/v1/namespaces/{KF}/configmaps/katib-config": {
            "kind": "ConfigMap",
            "data": {"katib-config.yaml": yaml.safe_dump(KATIB_CONFIG)},
        },
        "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses": {
            "kind": "VolumeSnapshotClassList",
            "items": [
                {
                    "metadata": {
                        "name": "csi-hostpath-snapclass",
                        "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
                    },
                    "driver": "hostpath.csi.k8s.io",
                    "deletionPolicy": "Delete",
                },
                {
                    "metadata": {"name": "kfg-retain"},
                    "driver": "hostpath.csi.k8s.io",
                    "deletionPolicy": "Retain",
                },
            ],
        },
        "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/kfg-retain": {
            "metadata": {"name": "kfg-retain"},
            "driver": "hostpath.csi.k8s.io",
            "deletionPolicy": "Retain",
        },
        # A Kubeflow profile namespace's labels.
        f"/api/v1/namespaces/{NAMESPACE}": {
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "app.kubernetes.io/part-of": "kubeflow-profile",
                    "istio-injection": "enabled",
                    "katib.kubeflow.org/metrics-collector-injection": "enabled",
                    "pipelines.kubeflow.org/enabled": "true",
                },
            },
        },
        f"/apis/kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/poddefaults/access-ml-pipeline": {
            "kind": "PodDefault"
        },
    }


class FakeCluster:
    def __init__(self) -> None:
        self.objects = healthy()
        self.forbidden: set[str] = set()
        self.denied: set[tuple[str, str, str]] = set()
        self.reviews: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path in fake.forbidden:
                    self._send(403, status_body(403, "Forbidden"))
                elif path in fake.objects:
                    self._send(200, fake.objects[path])
                else:
                    self._send(404, status_body(404, "NotFound"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                review = json.loads(self.rfile.read(length))
                if self.path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
                    self._send(404, status_body(404, "NotFound"))
                    return
                fake.reviews.append(review)
                attributes = review["spec"]["resourceAttributes"]
                key = (attributes["verb"], attributes.get("group", ""), attributes["resource"])
                allowed = key not in fake.denied
                self._send(201, {**review, "status": {"allowed": allowed}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def api(self) -> KubeApi:
        from kubernetes.client import ApiClient, Configuration

        configuration = Configuration(host=self.url)
        configuration.api_key = {"authorization": "Bearer t"}
        return KubeApi(ApiClient(configuration))


def status_body(code: int, reason: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "code": code,
    }


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster()
    yield fake
    fake.server.shutdown()


def kubeconfig_for(fake: FakeCluster, directory: Path) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": "fake",
                        "context": {"cluster": "fake", "user": "me", "namespace": NAMESPACE},
                    }
                ],
                "current-context": "fake",
            }
        )
    )
    return path


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "doctor", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


# Everything a package can ask for: tuning with early stopping, a named and a default
# snapshot class, launcher pods using the access-ml-pipeline PodDefault.
EVERYTHING = Needs(
    known=True,
    namespaces=(NAMESPACE,),
    tuning=True,
    algorithms=("tpe",),
    early_stopping=("medianstop",),
    snapshots=True,
    snapshot_classes=("kfg-retain",),
    default_snapshot_class=True,
    launcher=True,
    pod_label=True,
    pipelines=("p",),
)


def run(fake: FakeCluster, needs: Needs = EVERYTHING) -> Report:
    return diagnose(fake.api(), needs, needs.namespaces or (NAMESPACE,), KF, fake.url)


def result(report: Report, check: str) -> Any:
    found = [r for r in report.results if r.check == check]
    assert len(found) == 1, [r.check for r in report.results]
    return found[0]


def test_a_cluster_set_up_as_documented_passes(cluster: FakeCluster) -> None:
    report = run(cluster)
    assert {r.check: r.status for r in report.results if r.status != OK} == {}
    assert not report.failed
    assert [r.check for r in report.results] == [
        "API pipelines.kubeflow.org/v2beta1",
        "API kubeflow.org/v1beta1",
        "API snapshot.storage.k8s.io/v1",
        "API kubeflow.org/v1alpha1",
        "API cert-manager.io/v1",
        "KFP pipeline store",
        "KFP PipelineVersion webhook",
        "Katib config",
        "Katib trial kind",
        "Katib StdOut collector",
        "Katib suggestion tpe",
        "Katib early stopping medianstop",
        "VolumeSnapshotClass kfg-retain",
        "default VolumeSnapshotClass",
        f"namespace {NAMESPACE}",
        f"Katib metrics in {NAMESPACE}",
        f"PodDefault {NAMESPACE}/access-ml-pipeline",
        f"access {NAMESPACE}: you: runs",
        f"access {NAMESPACE}: you: experiments",
        f"access {NAMESPACE}: launcher Role",
        f"Istio sidecars in {NAMESPACE}",
    ]


# (what to break, the check, its status then, a fragment of the detail, of the fix)
BROKEN = [
    (
        lambda f: f.objects.pop("/apis/pipelines.kubeflow.org/v2beta1"),
        "API pipelines.kubeflow.org/v2beta1",
        MISSING,
        "not served",
        "platform-agnostic-multi-user-k8s-native",
    ),
    (
        lambda f: f.objects.__setitem__(
            "/apis/pipelines.kubeflow.org/v2beta1",
            resource_list("pipelines.kubeflow.org/v2beta1", "pipelines"),
        ),
        "API pipelines.kubeflow.org/v2beta1",
        MISSING,
        "served without pipelineversions",
        "Kubernetes-native pipeline store",
    ),
    (
        lambda f: f.objects.pop("/apis/kubeflow.org/v1beta1"),
        "API kubeflow.org/v1beta1",
        MISSING,
        "not served",
        "install Katib v0.19.0",
    ),
    (
        lambda f: f.objects.pop("/apis/snapshot.storage.k8s.io/v1"),
        "API snapshot.storage.k8s.io/v1",
        MISSING,
        "not served",
        "external-snapshotter v8.6.0",
    ),
    (
        lambda f: f.objects.pop("/apis/kubeflow.org/v1alpha1"),
        "API kubeflow.org/v1alpha1",
        MISSING,
        "not served",
        "kfpAccess: token",
    ),
    (
        lambda f: f.objects.pop("/apis/cert-manager.io/v1"),
        "API cert-manager.io/v1",
        WARN,
        "not served",
        "install cert-manager",
    ),
    # Kubeflow's default KFP: the database store (no flag; main.go defaults it to false).
    (
        lambda f: f.objects[f"/apis/apps/v1/namespaces/{KF}/deployments/ml-pipeline"]["spec"][
            "template"
        ]["spec"]["containers"][0].__setitem__("args", ["--config=/config"]),
        "KFP pipeline store",
        MISSING,
        "database: ml-pipeline runs without --pipelinesStoreKubernetes",
        "add --pipelinesStoreKubernetes=true to the ml-pipeline-api-server container's args",
    ),
    (
        lambda f: f.objects.pop(f"/apis/apps/v1/namespaces/{KF}/deployments/ml-pipeline"),
        "KFP pipeline store",
        MISSING,
        "no Deployment ml-pipeline in namespace kubeflow",
        "install Kubeflow Pipelines 2.17.0",
    ),
    (
        lambda f: f.forbidden.add(f"/apis/apps/v1/namespaces/{KF}/deployments/ml-pipeline"),
        "KFP pipeline store",
        UNKNOWN,
        "HTTP 403",
        "--pipelinesStoreKubernetes=true",
    ),
    (
        lambda f: f.objects.pop(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
            "pipelineversions.pipelines.kubeflow.org"
        ),
        "KFP PipelineVersion webhook",
        MISSING,
        "no validatingwebhookconfiguration",
        "manifests/kustomize/base/webhook",
    ),
    (
        lambda f: f.objects.pop(f"/api/v1/namespaces/{KF}/configmaps/katib-config"),
        "Katib config",
        MISSING,
        "Katib is not installed",
        "install Katib v0.19.0",
    ),
    (
        lambda f: f.objects[f"/api/v1/namespaces/{KF}/configmaps/katib-config"].__setitem__(
            "data",
            {
                "katib-config.yaml": yaml.safe_dump(
                    {**KATIB_CONFIG, "runtime": {**KATIB_CONFIG["runtime"], "suggestions": []}}
                )
            },
        ),
        "Katib suggestion tpe",
        MISSING,
        "no suggestion service for `tpe`",
        "{algorithmName: tpe, image: ghcr.io/kubeflow/katib/suggestion-hyperopt:v0.19.0}",
    ),
    (
        lambda f: f.objects[f"/api/v1/namespaces/{KF}/configmaps/katib-config"].__setitem__(
            "data",
            {
                "katib-config.yaml": yaml.safe_dump(
                    {**KATIB_CONFIG, "runtime": {**KATIB_CONFIG["runtime"], "earlyStoppings": []}}
                )
            },
        ),
        "Katib early stopping medianstop",
        MISSING,
        "no early stopping service for `medianstop`",
        "earlystopping-medianstop:v0.19.0} to runtime.earlyStoppings",
    ),
    (
        lambda f: f.objects[f"/api/v1/namespaces/{KF}/configmaps/katib-config"].__setitem__(
            "data",
            {
                "katib-config.yaml": yaml.safe_dump(
                    {
                        **KATIB_CONFIG,
                        "init": {"controller": {"trialResources": ["TFJob.v1.kubeflow.org"]}},
                    }
                )
            },
        ),
        "Katib trial kind",
        MISSING,
        "lacks Job.v1.batch",
        "add Job.v1.batch",
    ),
    (
        lambda f: f.objects[f"/api/v1/namespaces/{KF}/configmaps/katib-config"].__setitem__(
            "data",
            {
                "katib-config.yaml": yaml.safe_dump(
                    {
                        **KATIB_CONFIG,
                        "runtime": {**KATIB_CONFIG["runtime"], "metricsCollectors": []},
                    }
                )
            },
        ),
        "Katib StdOut collector",
        MISSING,
        "no StdOut kind",
        "file-metrics-collector:v0.19.0",
    ),
    (
        lambda f: f.objects.pop(
            "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/kfg-retain"
        ),
        "VolumeSnapshotClass kfg-retain",
        MISSING,
        "named by snapshot.className but absent",
        "blueprints/kubeflow-namespace/volumesnapshotclass.yaml",
    ),
    (
        lambda f: f.objects["/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses"]["items"][0][
            "metadata"
        ].pop("annotations"),
        "default VolumeSnapshotClass",
        MISSING,
        "no class is annotated as the default",
        "snapshot.storage.kubernetes.io/is-default-class=true",
    ),
    (
        lambda f: f.objects.pop(f"/api/v1/namespaces/{NAMESPACE}"),
        f"namespace {NAMESPACE}",
        MISSING,
        "does not exist",
        "create a Kubeflow profile",
    ),
    (
        lambda f: f.forbidden.add(f"/api/v1/namespaces/{NAMESPACE}"),
        f"namespace {NAMESPACE}",
        UNKNOWN,
        "HTTP 403",
        "kubectl get namespace team-a --show-labels",
    ),
    (
        lambda f: f.objects[f"/api/v1/namespaces/{NAMESPACE}"]["metadata"]["labels"].pop(
            "pipelines.kubeflow.org/enabled"
        ),
        f"namespace {NAMESPACE}",
        WARN,
        "no pipelines.kubeflow.org/enabled=true",
        "kubectl label namespace team-a pipelines.kubeflow.org/enabled=true",
    ),
    # kubeflow/katib v0.19.0 manifests/v1beta1/components/webhook/webhooks.yaml namespaceSelector
    (
        lambda f: f.objects[f"/api/v1/namespaces/{NAMESPACE}"]["metadata"]["labels"].pop(
            "katib.kubeflow.org/metrics-collector-injection"
        ),
        f"Katib metrics in {NAMESPACE}",
        MISSING,
        "no trial would report a metric",
        "kubectl label namespace team-a katib.kubeflow.org/metrics-collector-injection=enabled",
    ),
    (
        lambda f: f.objects.pop(
            f"/apis/kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/poddefaults/access-ml-pipeline"
        ),
        f"PodDefault {NAMESPACE}/access-ml-pipeline",
        MISSING,
        "would call KFP without a token",
        "blueprints/kubeflow-namespace (kfp-access.yaml)",
    ),
    (
        lambda f: f.denied.add(("create", "pipelines.kubeflow.org", "runs")),
        f"access {NAMESPACE}: you: runs",
        MISSING,
        "denied: create runs.pipelines.kubeflow.org",
        "kfg submit starts runs through the KFP API",
    ),
    (
        lambda f: f.denied.add(("list", "kubeflow.org", "trials")),
        f"access {NAMESPACE}: you: experiments",
        MISSING,
        "denied: list trials.kubeflow.org",
        "kfg status reads the Experiment",
    ),
    (
        lambda f: f.denied.add(("create", "pipelines.kubeflow.org", "runs")),
        f"access {NAMESPACE}: launcher Role",
        WARN,
        "denied: create runs.pipelines.kubeflow.org",
        "must hold every permission its Role grants",
    ),
    # Istio: STRICT mutual TLS refuses sidecar-less callers (istio.io security.istio.io/v1).
    (
        lambda f: f.objects.__setitem__(
            "/apis/security.istio.io/v1/namespaces/istio-system/peerauthentications",
            {"items": [{"metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}]},
        ),
        f"Istio sidecars in {NAMESPACE}",
        WARN,
        "STRICT mutual TLS (istio-system/default)",
        "portLevelMtls PERMISSIVE",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "check", "status", "detail", "fix"), BROKEN, ids=[f"{b[1]}:{b[2]}" for b in BROKEN]
)
def test_each_check_reports_what_is_missing_and_how_to_fix_it(
    cluster: FakeCluster, breakage: Any, check: str, status: str, detail: str, fix: str
) -> None:
    assert result(run(cluster), check).status == OK
    breakage(cluster)
    found = result(run(cluster), check)
    assert (found.status, detail in found.detail, fix in found.fix) == (status, True, True), found


def test_only_what_the_package_needs_is_required(cluster: FakeCluster) -> None:
    for path in [
        "/apis/kubeflow.org/v1beta1",
        "/apis/snapshot.storage.k8s.io/v1",
        "/apis/kubeflow.org/v1alpha1",
    ]:
        cluster.objects.pop(path)
    plain = Needs(known=True, namespaces=(NAMESPACE,), pipelines=("wine",))
    report = run(cluster, plain)
    assert not report.failed
    checks = [r.check for r in report.results]
    assert "API kubeflow.org/v1beta1" not in checks and "Katib config" not in checks
    # Without a kale.yaml, everything is checked but only KFP is required.
    report = run(cluster, Needs())
    statuses = {r.check: r.status for r in report.results}
    assert statuses["API kubeflow.org/v1beta1"] == WARN
    assert statuses["API snapshot.storage.k8s.io/v1"] == WARN
    assert statuses["Katib suggestion services"] == OK
    assert not report.failed


def test_the_access_review_asks_for_the_launchers_rendered_role(cluster: FakeCluster) -> None:
    run(cluster)
    asked = [
        (a["verb"], a["group"], a["resource"])
        for a in (r["spec"]["resourceAttributes"] for r in cluster.reviews)
    ]
    assert set(LAUNCHER_RULES) <= set(asked)
    assert all(r["spec"]["resourceAttributes"]["namespace"] == NAMESPACE for r in cluster.reviews)


def test_doctor_knows_what_the_launcher_is_rendered_with() -> None:
    """kfg doctor asks for what kfg renders, and importing it costs no kfp."""
    import subprocess
    import sys

    probe = "import sys, kfg.cluster.doctor; print('kfp' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
        == "False\n"
    )
    from kfg.config.model import Launcher
    from kfg.render.launcher import pod_template, rbac

    role = next(o for o in rbac(Launcher("i", "sa"), {}, None) if o["kind"] == "Role")
    rendered = {
        (verb, group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert set(LAUNCHER_RULES) == rendered
    metadata = pod_template(Launcher("i", "sa"), [], {})["metadata"]
    marks = {**metadata.get("labels", {}), **metadata.get("annotations", {})}
    assert (marks.get("sidecar.istio.io/inject", "true") != "false") is LAUNCHER_SIDECAR


# Go's flag package (cmd-line syntax of kubeflow/pipelines' apiserver, a Go flag.Bool).
@pytest.mark.parametrize(
    ("arguments", "value"),
    [
        (["--pipelinesStoreKubernetes=true"], True),
        (["-pipelinesStoreKubernetes"], True),
        (["--pipelinesStoreKubernetes=1"], True),
        (["--pipelinesStoreKubernetes=false"], False),
        (["--pipelinesStoreKubernetes=true", "--pipelinesStoreKubernetes=F"], False),
        (["--config=/config"], None),
        (["--", "--pipelinesStoreKubernetes=true"], None),
        (["--pipelinesStoreKubernetesX=true"], None),
    ],
)
def test_the_store_flag_is_read_as_go_parses_it(arguments: list[str], value: bool | None) -> None:
    assert _go_flag(arguments, "pipelinesStoreKubernetes") is value


def test_needs_come_from_kale_yaml() -> None:
    from kfg.core.load import load_pipeline

    digits = load_pipeline(EXAMPLES / "digits" / "kale.yaml", root=REPO).pipeline
    wine = load_pipeline(EXAMPLES / "wine" / "kale.yaml", root=REPO).pipeline
    assert digits and wine
    needs = needs_of([digits, wine], "team-b")
    assert (needs.tuning, needs.algorithms, needs.snapshots) == (True, ("tpe",), False)
    assert (
        needs.namespaces == ("team-b",) and needs.launcher and not needs.pod_label
    )  # token is the default
    assert not needs_of([wine]).tuning
    assert digits.tuning is not None
    local = dataclasses.replace(
        digits, tuning=dataclasses.replace(digits.tuning, cluster=False)
    )  # spec.tuning.cluster: false, tuned by `kfg tune` only
    assert not needs_of([local]).tuning and not needs_of([local]).launcher


def test_cli_table_and_exit_status(cluster: FakeCluster, tmp_path: Path) -> None:
    kubeconfig = str(kubeconfig_for(cluster, tmp_path))
    digits = str(EXAMPLES / "digits" / "kale.yaml")
    good = doctor(digits, "--kubeconfig", kubeconfig)
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert lines[0] == f"cluster {cluster.url}, namespace {NAMESPACE}"
    assert lines[2].split() == ["CHECK", "STATUS", "DETAIL"]
    assert any(line.startswith("Katib suggestion tpe") and " ok " in line for line in lines)
    assert lines[-1] == "everything required is present"
    containers = cluster.objects[f"/apis/apps/v1/namespaces/{KF}/deployments/ml-pipeline"]
    containers["spec"]["template"]["spec"]["containers"][0]["args"] = []
    bad = doctor(digits, "--kubeconfig", kubeconfig, "--json")
    assert bad.returncode == 1, bad.stderr
    document = json.loads(bad.stdout)
    assert document["ok"] is False and document["namespaces"] == [NAMESPACE]
    (store,) = [c for c in document["checks"] if c["check"] == "KFP pipeline store"]
    assert store["status"] == MISSING and "--pipelinesStoreKubernetes=true" in store["fix"]


def test_without_a_kubeconfig_it_says_what_it_would_check(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": ""}
    result = doctor(str(EXAMPLES / "digits" / "kale.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no kubeconfig found")
    assert "what digits-mlp need" in result.stdout
    assert "--pipelinesStoreKubernetes=true" in result.stdout
    assert "lists a service for tpe" in result.stdout
    as_json = doctor("--json", env=env)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["cluster"] is None


def test_an_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Path) -> None:
    fake = FakeCluster()
    kubeconfig = str(kubeconfig_for(fake, tmp_path))
    fake.server.shutdown()
    fake.server.server_close()
    result = doctor("--kubeconfig", kubeconfig)
    assert result.returncode == 1
    assert result.stderr.startswith("kfg: cannot reach the Kubernetes API at http://127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_doctor_does_not_import_kfp(cluster: FakeCluster, tmp_path: Path) -> None:
    kubeconfig = str(kubeconfig_for(cluster, tmp_path))
    code = (
        "import sys; from kfg.cli.app import app\n"
        f"try:\n    app(['doctor', 'examples/digits', '--kubeconfig', {kubeconfig!r}])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "assert 'kfp' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_healthy_fixture_is_not_shared_between_tests() -> None:
    assert healthy() == copy.deepcopy(healthy())


def test_istio_without_injection_or_with_sidecars_in_trial_pods(cluster: FakeCluster) -> None:
    from kfg.cluster.doctor import _istio

    api = cluster.api()
    (plain,) = _istio(api, NAMESPACE, {}, False, KF)
    assert (plain.status, plain.detail) == (
        OK,
        "no sidecar injection: trial Jobs end when their container exits",
    )
    (kept,) = _istio(api, NAMESPACE, {"istio.io/rev": "1-24"}, True, KF)
    assert kept.status == WARN and "Katib never sees the trial finish" in kept.detail
    assert 'sidecar.istio.io/inject: "false"' in kept.fix
