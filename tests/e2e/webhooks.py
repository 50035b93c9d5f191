"""Admission webhooks registered with the e2e API server over TLS on loopback.

- Katib v0.19.0's own Experiment defaulter and validator (tools/katib-webhook, built from
  github.com/kubeflow/katib v0.19.0), registered as Katib's manifests register them.
- KFP 2.17.0's PipelineVersion webhooks cannot be built: the Go module proxy refuses
  github.com/kubeflow/pipelines at 2.17.0 ("403 Forbidden: This module version is not
  available", for the tag, the commit and the version list). `PipelineVersionWebhook` is a
  stand-in in Python that follows backend/src/apiserver/webhook/pipelineversion_webhook.go
  at 2.17.0 for what decides ordering and drift: Default() looks up spec.pipelineName and
  refuses a PipelineVersion whose Pipeline does not exist, then sets the pipeline labels and
  owner reference; ValidateUpdate() refuses spec changes other than displayName and tags.
  (It does not parse the pipeline spec as ValidateCreate does.)
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.cluster import LOOPBACK, ApiError, ControlPlane, Process, free_port, wait_for

KATIB_CONFIG = Path(__file__).resolve().parent / "data" / "katib-config.yaml"
KATIB_NAMESPACE = "kubeflow"
# Katib's validator refuses Experiments in namespaces without this label (Kubeflow's
# profile controller sets it on every profile namespace).
KATIB_LABEL = {"katib.kubeflow.org/metrics-collector-injection": "enabled"}


def _client_config(plane: ControlPlane, port: int, path: str) -> dict[str, Any]:
    return {
        "url": f"https://{LOOPBACK}:{port}{path}",
        "caBundle": base64.b64encode(plane.ca.pem).decode(),
    }


def _experiment_rule() -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": ["kubeflow.org"],
            "apiVersions": ["v1beta1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["experiments"],
        }
    ]


@contextlib.contextmanager
def katib_webhooks(plane: ControlPlane, binary: Path) -> Iterator[Process]:
    """Katib's webhook server, with katib-config installed and its webhooks registered.

    The configurations copy kubeflow/katib v0.19.0
    manifests/v1beta1/components/webhook/webhooks.yaml for Experiments, with a URL instead
    of the katib-controller Service, and one change: a namespaceSelector on Katib's label,
    so namespaces without it (where Katib would refuse every Experiment) test the CRD alone.
    The Pod mutator (metrics-collector sidecars for trial pods) is not registered.
    """
    api = plane.api
    api.namespace(KATIB_NAMESPACE)
    # kubeflow/katib v0.19.0 manifests/v1beta1/installs/katib-cert-manager/kustomization.yaml:
    # configMapGenerator katib-config from katib-config.yaml, in the kubeflow namespace.
    api.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "katib-config", "namespace": KATIB_NAMESPACE},
            "data": {"katib-config.yaml": KATIB_CONFIG.read_text(encoding="utf-8")},
        }
    )
    directory = plane.directory / "katib-webhook"
    directory.mkdir(exist_ok=True)
    plane.ca.issue(directory, "tls", "katib-controller", server=True)
    port, probe = free_port(), free_port()
    process = Process.start(
        "katib-webhook",
        [
            str(binary),
            f"--katib-config={KATIB_CONFIG}",
            f"--host={LOOPBACK}",
            f"--port={port}",
            f"--cert-dir={directory}",
            f"--health-probe-bind-address={LOOPBACK}:{probe}",
        ],
        plane.directory / "katib-webhook.log",
        env={"KUBECONFIG": str(plane.kubeconfig), "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_for(
            "Katib's webhook server",
            lambda: (
                urllib.request.urlopen(f"http://{LOOPBACK}:{probe}/readyz", timeout=2).status == 200
            ),
            process,
        )
        selector = {"matchLabels": dict(KATIB_LABEL)}
        api.apply(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "katib.kubeflow.org"},
                "webhooks": [
                    {
                        "name": "defaulter.experiment.katib.kubeflow.org",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "clientConfig": _client_config(plane, port, "/mutate-experiment"),
                        "rules": _experiment_rule(),
                        "namespaceSelector": selector,
                    }
                ],
            }
        )
        api.apply(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "katib.kubeflow.org"},
                "webhooks": [
                    {
                        "name": "validator.experiment.katib.kubeflow.org",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "clientConfig": _client_config(plane, port, "/validate-experiment"),
                        "rules": _experiment_rule(),
                        "namespaceSelector": selector,
                    }
                ],
            }
        )
        api.namespace("katib-probe", KATIB_LABEL)
        probe_experiment = {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "probe-" + "x" * 40},
            "spec": {},
        }
        wait_until_called(
            plane, probe_experiment, "katib-probe", "experiment.katib.kubeflow.org", process
        )
        yield process
    finally:
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            api.delete(
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": kind,
                    "metadata": {"name": "katib.kubeflow.org"},
                }
            )
        process.stop()


def wait_until_called(
    plane: ControlPlane,
    obj: dict[str, Any],
    namespace: str,
    webhook: str,
    process: Process | None,
) -> None:
    """The API server takes a moment to start calling a new webhook: dry-run an object the
    webhook refuses until the refusal names it."""

    def refused_by_webhook() -> bool:
        try:
            plane.api.create(obj, namespace=namespace, dry_run=True)
        except ApiError as exc:
            return webhook in str(exc)
        return False

    wait_for(f"the API server to call {webhook}", refused_by_webhook, process, timeout=60)


# --- KFP's PipelineVersion webhook, as a stand-in ------------------------------------------

KFP_GROUP_VERSION = "pipelines.kubeflow.org/v2beta1"
MISSING_PIPELINE = "The spec.pipelineName doesn't map to an existing Pipeline object"
IMMUTABLE = "Pipeline spec is immutable; only mutable fields (display_name, tags) can be updated"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class PipelineVersionWebhook:
    """pipelineversion_webhook.go at KFP 2.17.0, reduced to Default() and ValidateUpdate()."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.requests: list[tuple[str, str, bool]] = []  # (operation, name, allowed)

    def default(
        self, obj: dict[str, Any], namespace: str
    ) -> tuple[bool, str, list[dict[str, Any]]]:
        name = obj.get("spec", {}).get("pipelineName", "")
        if not name:
            return False, MISSING_PIPELINE, []
        try:
            pipeline = self.plane.api.get(
                f"/apis/{KFP_GROUP_VERSION}/namespaces/{namespace}/pipelines/{name}"
            )
        except ApiError as exc:
            if exc.status == 404:
                return False, MISSING_PIPELINE, []
            return False, f"Failed to get the Pipeline {namespace}/{name}: {exc}", []
        labels = dict(obj["metadata"].get("labels") or {})
        labels["pipelines.kubeflow.org/pipeline-id"] = pipeline["metadata"]["uid"]
        labels["pipelines.kubeflow.org/pipeline"] = pipeline["metadata"]["name"][:63]
        owners = [dict(o) for o in obj["metadata"].get("ownerReferences") or []]
        mine = {
            "name": pipeline["metadata"]["name"],
            "blockOwnerDeletion": True,
            "uid": pipeline["metadata"]["uid"],
        }
        for owner in owners:
            if owner.get("apiVersion") == KFP_GROUP_VERSION and owner.get("kind") == "Pipeline":
                owner.update(mine)
                break
        else:
            owners.append({"apiVersion": KFP_GROUP_VERSION, "kind": "Pipeline", **mine})
        patch: list[dict[str, Any]] = [
            {"op": "add", "path": "/metadata/labels", "value": labels},
            {"op": "add", "path": "/metadata/ownerReferences", "value": owners},
        ]
        return True, "", patch

    @staticmethod
    def validate_update(old: dict[str, Any], new: dict[str, Any]) -> tuple[bool, str]:
        if old["metadata"].get("generation") != new["metadata"].get("generation"):
            expected = dict(old.get("spec", {}))
            for mutable in ("displayName", "tags"):
                expected.pop(mutable, None)
                if mutable in new.get("spec", {}):
                    expected[mutable] = new["spec"][mutable]
            if expected != new.get("spec", {}):
                return False, IMMUTABLE
        return True, ""

    def review(self, path: str, review: dict[str, Any]) -> dict[str, Any]:
        request = review["request"]
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        obj = request.get("object") or {}
        allowed, message = True, ""
        if urllib.parse.urlsplit(path).path.endswith("/mutate-pipelineversion"):
            # The object of a create may not carry its namespace yet; the request does.
            namespace = obj["metadata"].get("namespace") or request.get("namespace", "")
            allowed, message, patch = self.default(obj, namespace)
            if allowed and patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        elif request["operation"] == "UPDATE":
            allowed, message = self.validate_update(request["oldObject"], obj)
        self.requests.append((request["operation"], obj["metadata"].get("name", ""), allowed))
        if not allowed:
            response["allowed"] = False
            response["status"] = {"code": 400, "reason": "BadRequest", "message": message}
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }


@contextlib.contextmanager
def pipelineversion_webhook(plane: ControlPlane) -> Iterator[PipelineVersionWebhook]:
    """The stand-in served over TLS on loopback, registered like KFP 2.17.0's manifests
    (manifests/kustomize/base/webhook/pipelineversion-*-webhook-config.yaml)."""
    hook = PipelineVersionWebhook(plane)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = json.dumps(hook.review(self.path, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    directory = plane.directory / "kfp-webhook"
    directory.mkdir(exist_ok=True)
    crt, key = plane.ca.issue(directory, "tls", "ml-pipeline", server=True)
    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(crt), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api = plane.api
    rules = [
        {
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": ["pipelines.kubeflow.org"],
            "apiVersions": ["v2beta1"],
            "resources": ["pipelineversions"],
            "scope": "Namespaced",
        }
    ]
    configurations = []
    for kind, path in (
        ("MutatingWebhookConfiguration", "/webhooks/mutate-pipelineversion"),
        ("ValidatingWebhookConfiguration", "/webhooks/validate-pipelineversion"),
    ):
        configuration = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": "pipelineversions.pipelines.kubeflow.org"},
            "webhooks": [
                {
                    "name": "pipelineversions.pipelines.kubeflow.org",
                    "rules": rules,
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "clientConfig": _client_config(plane, port, path),
                }
            ],
        }
        api.apply(configuration)
        configurations.append(configuration)
    try:
        api.namespace("kfp-probe")
        probe_version = {
            "apiVersion": KFP_GROUP_VERSION,
            "kind": "PipelineVersion",
            "metadata": {"name": "probe"},
            "spec": {"pipelineName": "absent"},
        }
        wait_until_called(
            plane, probe_version, "kfp-probe", "pipelineversions.pipelines.kubeflow.org", None
        )
        yield hook
    finally:
        for configuration in configurations:
            api.delete(configuration)
        server.shutdown()
        server.server_close()
        thread.join(10)
