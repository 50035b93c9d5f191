"""The trial launcher's pod and its permissions, shared by Katib trials and `kfg submit` Jobs.

The launcher (`kfg trial`) runs in the pipeline's namespace and talks only to the KFP API.
In a multi-user Kubeflow that API authorises the caller's ServiceAccount token (audience
`pipelines.kubeflow.org`) against Kubernetes RBAC on `pipelines.kubeflow.org` resources,
so kfg renders a ServiceAccount, a Role allowing exactly what the launcher does, and the
RoleBinding; the token reaches the pod through Kubeflow's `access-ml-pipeline` PodDefault
(`kfpAccess: pod-label`) or through a projected volume kfg mounts itself (`token`).
"""

from __future__ import annotations

from typing import Any

from kfg.config.model import Launcher, Pipeline
from kfg.names import versioned
from kfg.render import gitops

CONTAINER = "kfg-trial"
TOKEN_AUDIENCE = "pipelines.kubeflow.org"
TOKEN_DIRECTORY = "/var/run/secrets/kubeflow/pipelines"
TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # read by kfp.Client inside a cluster
TOKEN_SECONDS = 7200
ACCESS_LABEL = {"access-ml-pipeline": "true"}
# Istio sidecars keep a Job's pod running after its container exits; the launcher only
# talks to the KFP API, which Kubeflow exposes inside the mesh without one.
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}

# What `kfg trial` and `kfg submit` do through the KFP API, as KFP's authorisation checks it.
RULES = [
    {
        "apiGroups": ["pipelines.kubeflow.org"],
        "resources": ["pipelines", "pipelines/versions"],
        "verbs": ["get", "list"],
    },
    {
        "apiGroups": ["pipelines.kubeflow.org"],
        "resources": ["experiments"],
        "verbs": ["get", "list", "create"],
    },
    {
        "apiGroups": ["pipelines.kubeflow.org"],
        "resources": ["runs"],
        "verbs": ["get", "list", "create", "readArtifact"],
    },
]


def pod_template(launcher: Launcher, args: list[str], labels: dict[str, str]) -> dict[str, Any]:
    """The pod that runs `kfg` with `args`, authenticated to the KFP API."""
    pod_labels = {**labels, **NO_SIDECAR}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": launcher.image,
        "command": ["kfg"],
        "args": args,
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        # The root filesystem is read-only; kfp.Client keeps its settings under $HOME.
        "env": [{"name": "HOME", "value": "/tmp"}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spec: dict[str, Any] = {
        "serviceAccountName": launcher.service_account,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if launcher.kfp_access == "pod-label":
        pod_labels.update(ACCESS_LABEL)
    else:
        container["env"].append({"name": TOKEN_ENV, "value": f"{TOKEN_DIRECTORY}/token"})
        container["volumeMounts"].append(
            {"name": "kfp-token", "mountPath": TOKEN_DIRECTORY, "readOnly": True}
        )
        spec["volumes"] += [
            {
                "name": "kfp-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "path": "token",
                                "audience": TOKEN_AUDIENCE,
                                "expirationSeconds": TOKEN_SECONDS,
                            }
                        }
                    ]
                },
            }
        ]
    return {"metadata": {"labels": dict(sorted(pod_labels.items()))}, "spec": spec}


def launcher_args(pipeline: Pipeline, version: str, run_name: str) -> list[str]:
    """`kfg trial` arguments naming the version, the run and the KFP API (no parameters:
    the run takes the pipeline's defaults unless the caller adds `--param`)."""
    launcher = pipeline.launcher
    args = [
        "trial",
        "--pipeline",
        pipeline.name,
        "--version",
        version,
        "--run-name",
        run_name,
        "--endpoint",
        launcher.endpoint,
        "--timeout",
        str(int(launcher.timeout_seconds)),
    ]
    if pipeline.namespace:
        args += ["--namespace", pipeline.namespace]
    return args


def run_job(pipeline: Pipeline, version: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Job that starts one run of `version` when it is synced: "run on merge".

    Named after the version, it runs once per version: Kubernetes keeps a finished Job,
    and a new version is a new Job. It sets no TTL, because a controller would re-create
    a Job that cleaned itself up, and run the pipeline again.
    """
    digest = version.rsplit("-", 1)[1]
    name = f"{versioned(pipeline.name, digest, 59)}-run"
    metadata: dict[str, Any] = {"name": name}
    if pipeline.namespace:
        metadata["namespace"] = pipeline.namespace
    metadata["labels"] = dict(labels)
    metadata["annotations"] = {gitops.ARGOCD_SYNC_WAVE: str(gitops.WAVE_RUN)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "template": pod_template(
                pipeline.launcher, launcher_args(pipeline, version, name), labels
            ),
        },
    }


def rbac(launcher: Launcher, labels: dict[str, str], namespace: str | None) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for the launcher."""
    name = launcher.service_account

    def metadata() -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if namespace:
            meta["namespace"] = namespace
        return meta

    # Without a namespace, the subject means the RoleBinding's own namespace (Kubernetes'
    # RBAC authorizer), and kustomize fills it in when a kustomization sets one.
    binding_subject: dict[str, Any] = {"kind": "ServiceAccount", "name": name}
    if namespace:
        binding_subject["namespace"] = namespace
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata()},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(),
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [binding_subject],
        },
    ]
