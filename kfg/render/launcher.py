"""The trial launcher's pod and its permissions, shared by Katib trials and `kfg submit` Jobs.

The launcher (`kfg trial`) runs in the pipeline's namespace and talks to the KFP API and,
to read the metrics its run's steps printed, to the Kubernetes API. In a multi-user
Kubeflow the KFP API authenticates the caller's ServiceAccount token of audience
`pipelines.kubeflow.org` (TokenReview) and authorises it with a SubjectAccessReview on
`pipelines.kubeflow.org` resources, so kfg renders a ServiceAccount, a Role allowing
exactly what the launcher does, and the RoleBinding.

The token reaches the pod one of two ways (`spec.launcher.kfpAccess`):
- `token` (default): the pod mounts a projected ServiceAccount token itself and points
  `KF_PIPELINES_SA_TOKEN_PATH` at it; nothing else in the namespace is needed, which
  matters because no Kubeflow component gives Katib's trial pods a token;
- `pod-label`: the pod only carries `access-ml-pipeline: "true"` and the namespace's
  PodDefault of that name mounts the token. kfg then mounts none of its own: the PodDefault
  webhook rejects a pod whose volume or mount of the same name or path differs from the
  PodDefault's (`mergeVolumes`/`mergeVolumeMounts` in kubeflow/kubeflow
  components/admission-webhook/main.go), and the API server's defaulting makes them differ.
"""

from __future__ import annotations

from typing import Any

from kfg.config.model import Launcher, Pipeline
from kfg.kube.names import versioned
from kfg.render import gitops

CONTAINER = "kfg-trial"
TOKEN_AUDIENCE = "pipelines.kubeflow.org"
TOKEN_DIRECTORY = "/var/run/secrets/kubeflow/pipelines"
TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # read by kfg.launcher.kfpapi
TOKEN_SECONDS = 7200
ACCESS_LABEL = {"access-ml-pipeline": "true"}
# Istio sidecars keep a Job's pod running after its container exits; the launcher only
# talks to the KFP API, which Kubeflow exposes inside the mesh without one.
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}

# Exactly what `kfg trial` and `kfg submit` do, as the authorisers check it. KFP 2.17.0
# (backend/src/apiserver/server/*_server.go) asks for resource `pipelines` for pipelines
# and their versions alike (canAccessPipelineVersion), with the verb of the operation:
# GetPipelineByName get, ListPipelineVersions list, ListExperiments list, CreateExperiment
# create, CreateRun create, GetRun get, TerminateRun terminate. The run's metrics come from
# its step pods' logs (kfg.launcher.podlogs): list pods (by the run's label), get pods/log.
RULES = [
    {
        "apiGroups": ["pipelines.kubeflow.org"],
        "resources": ["pipelines"],
        "verbs": ["get", "list"],
    },
    {
        "apiGroups": ["pipelines.kubeflow.org"],
        "resources": ["experiments"],
        "verbs": ["create", "list"],
    },
    {
        "apiGroups": ["pipelines.kubeflow.org"],
        "resources": ["runs"],
        "verbs": ["create", "get", "terminate"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


# Deleting a trial signals only the pod's first process, which in a Katib trial is the
# `sh -c` wrapper Katib adds (kubeflow/katib v0.19.0 pkg/webhook/v1beta1/pod/utils.go); it
# dies without passing SIGTERM on. The launcher writes its pid here, and a preStop hook
# (run by the kubelet before it signals anything) sends it SIGTERM and waits for it to
# terminate its KFP run, within the grace period.
PIDFILE_ENV = "KFG_LAUNCHER_PIDFILE"
PIDFILE = "/tmp/kfg-launcher.pid"
STOP_SCRIPT = (
    f'pid=$(cat {PIDFILE} 2>/dev/null) || exit 0; kill -TERM "$pid" 2>/dev/null || exit 0;'
    ' while kill -0 "$pid" 2>/dev/null; do sleep 1; done'
)
STOP_GRACE_SECONDS = 90  # terminating the run takes one API call with its own timeouts
# A Job outlives its launcher's --timeout by this much at most, then Kubernetes stops it.
DEADLINE_MARGIN_SECONDS = 600


def job_deadline(launcher: Launcher) -> int:
    """`activeDeadlineSeconds` of a launcher Job: its run's timeout plus room to end it."""
    return int(launcher.timeout_seconds) + DEADLINE_MARGIN_SECONDS


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
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": PIDFILE_ENV, "value": PIDFILE}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", STOP_SCRIPT]}}},
    }
    spec: dict[str, Any] = {
        "serviceAccountName": launcher.service_account,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": STOP_GRACE_SECONDS,
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
            "activeDeadlineSeconds": job_deadline(pipeline.launcher),
            "backoffLimit": 0,
            "template": pod_template(
                pipeline.launcher, launcher_args(pipeline, version, name), labels
            ),
        },
    }


def rbac(
    launcher: Launcher,
    labels: dict[str, str],
    namespace: str | None,
    rules: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for the launcher (`rules`: default `RULES`)."""
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
            "rules": RULES if rules is None else rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [binding_subject],
        },
    ]
