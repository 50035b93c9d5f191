"""`kfg doctor`: does this cluster have what kfg's rendered package needs?

Every object kfg renders is schema-valid, yet on a cluster it only works when the right
controllers run in the right mode: the Kubernetes-native KFP pipeline store (with the
database store KFP ignores Pipeline and PipelineVersion objects), Katib with a suggestion
service for the pipeline's algorithm, the CSI snapshot API and a snapshot class, the
namespace labels Katib and Istio act on, and the access the user and the launcher need.
Each check reads the cluster (or asks SelfSubjectAccessReview) and changes nothing; each
answer is ok, missing (required and absent: exit 1), warn (absent but optional, or a
risk) or unknown (the API refused to say), with how to fix it.

The facts checked come from the releases in `kfg.upstream`; each check names its source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kfg.config.model import Pipeline
from kfg.errors import KfgError
from kfg.render import launcher as launcher_render
from kfg.upstream import EXTERNAL_SNAPSHOTTER, KATIB, KFP

OK, MISSING, WARN, UNKNOWN = "ok", "missing", "warn", "unknown"
KUBEFLOW_NAMESPACE = "kubeflow"

# kubeflow/pipelines 2.17.0 backend/src/apiserver/main.go: a Go command-line flag (no
# environment variable), false by default; the k8s-native overlays add it to the
# ml-pipeline Deployment (manifests/kustomize/env/cert-manager/*-k8s-native/patches/
# deployment.yaml).
STORE_FLAG = "pipelinesStoreKubernetes"
KFP_DEPLOYMENT = "ml-pipeline"
KFP_CONTAINER = "ml-pipeline-api-server"
# manifests/kustomize/base/webhook at 2.17.0: both webhook configurations carry this name.
KFP_WEBHOOK = "pipelineversions.pipelines.kubeflow.org"
KFP_INSTALL = (
    f"install Kubeflow Pipelines {KFP} with the Kubernetes-native pipeline store: kubeflow/"
    f"pipelines manifests/kustomize/env/cert-manager/platform-agnostic-multi-user-k8s-native"
    f" at tag {KFP}, after cert-manager (see docs/cluster.md)"
)
# kubeflow/katib v0.19.0 pkg/controller.v1beta1/consts/const.go: the ConfigMap and its key.
KATIB_CONFIG = "katib-config"
KATIB_CONFIG_KEY = "katib-config.yaml"
# The suggestion service each algorithm has in Katib's default katib-config
# (manifests/v1beta1/installs/katib-standalone/katib-config.yaml at v0.19.0).
KATIB_IMAGES = {
    "random": "suggestion-hyperopt",
    "tpe": "suggestion-hyperopt",
    "grid": "suggestion-optuna",
    "multivariate-tpe": "suggestion-optuna",
    "hyperband": "suggestion-hyperband",
    "bayesianoptimization": "suggestion-skopt",
    "cmaes": "suggestion-goptuna",
    "sobol": "suggestion-goptuna",
    "medianstop": "earlystopping-medianstop",
}
# manifests/v1beta1/components/webhook/webhooks.yaml at v0.19.0: the pod webhook that adds
# the metrics collector selects namespaces by this label.
KATIB_INJECTION = ("katib.kubeflow.org/metrics-collector-injection", "enabled")
# kubeflow/pipelines 2.17.0 manifests/kustomize/base/installs/multi-user/
# pipelines-profile-controller/decorator-controller.yaml: namespaces it prepares for runs.
KFP_ENABLED = ("pipelines.kubeflow.org/enabled", "true")
# kubernetes-csi/external-snapshotter: the annotation marking the default class.
DEFAULT_SNAPSHOT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
PODDEFAULT = "access-ml-pipeline"
ISTIO_LABELS = ("istio-injection", "istio.io/rev")
ISTIO_ROOT = "istio-system"


class DoctorError(KfgError):
    """The cluster cannot be asked at all; the message says why."""


class Api(Protocol):
    """The Kubernetes API by path: (HTTP status, decoded JSON body)."""

    def get(self, path: str) -> tuple[int, Any]: ...

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]: ...


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Needs:
    """What the package asks of the cluster; without a kale.yaml, everything is optional."""

    known: bool = False
    namespaces: tuple[str, ...] = ()
    tuning: bool = False
    algorithms: tuple[str, ...] = ()
    early_stopping: tuple[str, ...] = ()
    snapshots: bool = False
    snapshot_classes: tuple[str, ...] = ()  # named in kale.yaml, must exist
    rendered_classes: tuple[str, ...] = ()  # spec.snapshotClass: the package creates them
    default_snapshot_class: bool = False
    launcher: bool = False
    pod_label: bool = False
    pipelines: tuple[str, ...] = ()

    def wants(self, feature: bool) -> bool:
        """Whether a feature's checks run: always without a kale.yaml (as optional)."""
        return feature or not self.known

    def absent(self, feature: bool) -> str:
        return MISSING if feature else WARN


def needs_of(pipelines: Iterable[Pipeline], namespace: str | None = None) -> Needs:
    """What these pipelines' rendered packages need, read from kale.yaml alone (no kfp)."""
    items = list(pipelines)
    algorithms: list[str] = []
    stoppers: list[str] = []
    named: list[str] = []
    rendered: list[str] = []
    default = False
    for p in items:
        if p.tuning and p.tuning.cluster:
            algorithms.append(p.tuning.algorithm)
            if p.tuning.early_stopping:
                stoppers.append(p.tuning.early_stopping)
        chosen = p.snapshot_class.name if p.snapshot_class else None
        if chosen:
            rendered.append(chosen)
        for volume in p.volumes:
            if volume.snapshot is None:
                continue
            if volume.snapshot.class_name:
                named.append(volume.snapshot.class_name)
            elif not chosen:
                default = True
        if any(s.snapshot_after for s in p.steps) and not chosen:
            default = True
    launcher = [p for p in items if (p.tuning and p.tuning.cluster) or p.launcher.run_on_sync]
    spaces = [namespace] if namespace else [p.namespace for p in items if p.namespace]
    return Needs(
        known=True,
        namespaces=tuple(dict.fromkeys(spaces)),
        tuning=bool(algorithms),
        algorithms=tuple(dict.fromkeys(algorithms)),
        early_stopping=tuple(dict.fromkeys(stoppers)),
        snapshots=bool(named or rendered or default),
        snapshot_classes=tuple(dict.fromkeys(n for n in named if n not in rendered)),
        rendered_classes=tuple(dict.fromkeys(rendered)),
        default_snapshot_class=default,
        launcher=bool(launcher),
        pod_label=any(p.launcher.kfp_access == "pod-label" for p in launcher),
        pipelines=tuple(p.name for p in items),
    )


@dataclass
class Report:
    cluster: str | None
    namespaces: tuple[str, ...]
    results: list[Result] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status == MISSING for r in self.results)

    def as_json(self) -> str:
        return json.dumps(
            {
                "cluster": self.cluster,
                "namespaces": list(self.namespaces),
                "ok": not self.failed,
                "checks": [asdict(r) for r in self.results],
            },
            indent=2,
        )


def diagnose(
    api: Api,
    needs: Needs,
    namespaces: tuple[str, ...],
    kubeflow: str = KUBEFLOW_NAMESPACE,
    cluster: str | None = None,
) -> Report:
    """Run every check the package's needs call for, in the order a cluster is set up."""
    report = Report(cluster, namespaces)
    add = report.results.extend
    add(_apis(api, needs))
    add(_pipeline_store(api, kubeflow))
    if needs.wants(needs.tuning):
        add(_katib(api, needs, kubeflow))
    if needs.wants(needs.snapshots):
        add(_snapshot_classes(api, needs))
    for namespace in namespaces:
        labels = _namespace_labels(api, namespace)
        add(_namespace(namespace, labels, needs))
        if needs.wants(needs.pod_label):
            add(_poddefault(api, namespace, needs))
        add(_access(api, namespace, needs))
        if needs.wants(needs.launcher):
            add(_istio(api, namespace, labels, LAUNCHER_SIDECAR, kubeflow))
    return report


# --- the APIs (custom resource definitions and their served versions) ------------------


def _apis(api: Api, needs: Needs) -> Iterator[Result]:
    """Each API group/version the package uses, by discovery (readable by every user)."""
    groups: list[tuple[str, tuple[str, ...], bool, bool, str]] = [
        ("pipelines.kubeflow.org/v2beta1", ("pipelines", "pipelineversions"), True, True,
         KFP_INSTALL),
        ("kubeflow.org/v1beta1", ("experiments", "trials"), needs.tuning, needs.wants(needs.tuning),
         f"install Katib {KATIB} (kubeflow/katib manifests/v1beta1/installs/katib-with-kubeflow,"
         " or Kubeflow 1.10/1.11, which includes it)"),
        ("snapshot.storage.k8s.io/v1", ("volumesnapshots", "volumesnapshotclasses"),
         needs.snapshots, needs.wants(needs.snapshots),
         f"install the CSI snapshot CRDs and snapshot-controller (kubernetes-csi/"
         f"external-snapshotter {EXTERNAL_SNAPSHOTTER}: client/config/crd and deploy/kubernetes/"
         "snapshot-controller) and a CSI driver that supports snapshots"),
        ("kubeflow.org/v1alpha1", ("poddefaults",), needs.pod_label, needs.wants(needs.pod_label),
         "install Kubeflow's admission webhook (PodDefault), or set spec.launcher.kfpAccess:"
         " token so the launcher mounts its own KFP token"),
        ("cert-manager.io/v1", ("certificates", "issuers"), False, True,
         "install cert-manager: KFP's PipelineVersion webhook gets its TLS certificate from it"),
    ]  # fmt: skip
    for group_version, resources, required, wanted, fix in groups:
        if not wanted:
            continue
        check = f"API {group_version}"
        status, body = api.get(f"/apis/{group_version}")
        if status in (401, 403):
            yield Result(check, UNKNOWN, f"discovery refused (HTTP {status})", fix)
            continue
        served = (
            {r.get("name") for r in body.get("resources") or []}
            if status == 200 and isinstance(body, dict)
            else set()
        )
        lacking = [r for r in resources if r not in served]
        if not lacking:
            yield Result(check, OK, "serves " + ", ".join(resources))
        elif len(lacking) == len(resources):
            yield Result(check, MISSING if required else WARN, "not served", fix)
        else:
            absent = MISSING if required else WARN
            yield Result(check, absent, "served without " + ", ".join(lacking), fix)


# --- Kubeflow Pipelines: the pipeline store and its webhook ---------------------------


def _go_flag(arguments: list[str], name: str) -> bool | None:
    """The value of a Go `flag.Bool` in a command line (last one wins), None when absent."""
    value: bool | None = None
    for argument in arguments:
        if argument == "--":
            break  # Go's flag package stops here
        if not argument.startswith("-"):
            continue
        key, equals, text = argument.lstrip("-").partition("=")
        if key != name:
            continue
        if not equals or text in ("1", "t", "T", "true", "TRUE", "True"):
            value = True
        elif text in ("0", "f", "F", "false", "FALSE", "False"):
            value = False
    return value


def _pipeline_store(api: Api, kubeflow: str) -> Iterator[Result]:
    check = "KFP pipeline store"
    path = f"/apis/apps/v1/namespaces/{kubeflow}/deployments/{KFP_DEPLOYMENT}"
    status, body = api.get(path)
    if status == 404:
        yield Result(
            check, MISSING, f"no Deployment {KFP_DEPLOYMENT} in namespace {kubeflow}", KFP_INSTALL
        )
        return
    if status != 200:
        yield Result(
            check,
            UNKNOWN,
            f"cannot read Deployment {kubeflow}/{KFP_DEPLOYMENT} (HTTP {status})",
            f"ask your platform team whether {KFP_DEPLOYMENT} runs with --{STORE_FLAG}=true",
        )
        return
    containers = ((body.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    chosen = next((c for c in containers if c.get("name") == KFP_CONTAINER), None)
    chosen = chosen or (containers[0] if containers else {})
    arguments = [str(a) for a in [*(chosen.get("command") or []), *(chosen.get("args") or [])]]
    if _go_flag(arguments, STORE_FLAG):
        yield Result(
            check,
            OK,
            f"Kubernetes: {KFP_DEPLOYMENT} runs with --{STORE_FLAG}=true, so Pipeline and"
            " PipelineVersion objects are KFP's pipelines",
        )
        yield from _webhook(api, arguments)
        return
    yield Result(
        check,
        MISSING,
        f"database: {KFP_DEPLOYMENT} runs without --{STORE_FLAG} (the default), so KFP"
        " ignores the Pipeline and PipelineVersion objects kfg renders",
        f"{KFP_INSTALL}; on an installed Kubeflow, add --{STORE_FLAG}=true to the"
        f" {KFP_CONTAINER} container's args together with the webhook (base/webhook) and its"
        " certificate (env/cert-manager/base-webhook-certs)",
    )


def _webhook(api: Api, arguments: list[str]) -> Iterator[Result]:
    """The PipelineVersion webhook links a version to its Pipeline (owner reference)."""
    check = "KFP PipelineVersion webhook"
    missing = []
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        status, _ = api.get(f"/apis/admissionregistration.k8s.io/v1/{kind}/{KFP_WEBHOOK}")
        if status in (401, 403):
            yield Result(check, UNKNOWN, f"cannot read {kind} (HTTP {status})")
            return
        if status != 200:
            missing.append(kind.removesuffix("s"))
    if not missing:
        yield Result(check, OK, f"{KFP_WEBHOOK} mutates and validates PipelineVersions")
        return
    external = _go_flag(arguments, "disableWebhook")
    yield Result(
        check,
        MISSING,
        f"no {' or '.join(missing)} {KFP_WEBHOOK}"
        + (" (the API server's own is disabled)" if external else "")
        + ": PipelineVersions would not be linked to their Pipeline",
        f"apply kubeflow/pipelines manifests/kustomize/base/webhook at tag {KFP}",
    )


# --- Katib: the suggestion services and the trial kind ---------------------------------


def _katib(api: Api, needs: Needs, kubeflow: str) -> Iterator[Result]:
    check = "Katib config"
    status, body = api.get(f"/api/v1/namespaces/{kubeflow}/configmaps/{KATIB_CONFIG}")
    absent = needs.absent(needs.tuning)
    if status == 404:
        yield Result(
            check,
            absent,
            f"no ConfigMap {kubeflow}/{KATIB_CONFIG}: Katib is not installed there",
            f"install Katib {KATIB}",
        )
        return
    if status != 200:
        yield Result(
            check, UNKNOWN, f"cannot read ConfigMap {kubeflow}/{KATIB_CONFIG} (HTTP {status})"
        )
        return
    import yaml

    try:
        config = yaml.safe_load(((body.get("data") or {}).get(KATIB_CONFIG_KEY)) or "") or {}
    except yaml.YAMLError:
        config = None
    if not isinstance(config, dict):
        yield Result(check, absent, f"{KATIB_CONFIG} has no readable {KATIB_CONFIG_KEY}")
        return
    yield Result(check, OK, f"ConfigMap {kubeflow}/{KATIB_CONFIG}")
    runtime = config.get("runtime") or {}
    # Job.v1.batch is the default when trialResources is absent (pkg/apis/config/v1beta1).
    trial_kinds = (config.get("init") or {}).get("controller", {}).get("trialResources")
    if trial_kinds and "Job.v1.batch" not in trial_kinds:
        yield Result(
            "Katib trial kind",
            absent,
            "init.controller.trialResources lacks Job.v1.batch, the kind of kfg's trials",
            f"add Job.v1.batch to init.controller.trialResources in {KATIB_CONFIG}",
        )
    else:
        yield Result("Katib trial kind", OK, "Job.v1.batch trials are allowed")
    collectors = {
        str(c.get("kind")): str(c.get("image")) for c in runtime.get("metricsCollectors") or []
    }
    if "StdOut" in collectors:
        yield Result("Katib StdOut collector", OK, collectors["StdOut"])
    else:
        yield Result(
            "Katib StdOut collector",
            absent,
            "runtime.metricsCollectors has no StdOut kind, which kfg's trials report through",
            f"add {{kind: StdOut, image: ghcr.io/kubeflow/katib/file-metrics-collector:{KATIB}}}",
        )
    yield from _services(
        "suggestion", runtime.get("suggestions") or [], needs.algorithms, needs, absent
    )
    yield from _services(
        "early stopping", runtime.get("earlyStoppings") or [], needs.early_stopping, needs, absent
    )


def _services(
    kind: str, configured: list[dict[str, Any]], wanted: tuple[str, ...], needs: Needs, absent: str
) -> Iterator[Result]:
    images = {str(s.get("algorithmName")): str(s.get("image") or "") for s in configured}
    if not needs.known:
        listed = ", ".join(sorted(images)) or "none"
        yield Result(f"Katib {kind} services", OK if images else WARN, f"configured: {listed}")
        return
    key = "suggestions" if kind == "suggestion" else "earlyStoppings"
    for algorithm in wanted:
        check = f"Katib {kind} {algorithm}"
        if images.get(algorithm, "").strip():
            yield Result(check, OK, images[algorithm])
            continue
        image = KATIB_IMAGES.get(algorithm, f"suggestion-{algorithm}")
        yield Result(
            check,
            absent,
            f"{KATIB_CONFIG} has no {kind} service for `{algorithm}`: Katib fails the"
            " Experiment when it starts",
            f"add {{algorithmName: {algorithm}, image: ghcr.io/kubeflow/katib/{image}:{KATIB}}}"
            f" to runtime.{key} in {KATIB_CONFIG}",
        )


# --- CSI snapshots -------------------------------------------------------------------


def _snapshot_classes(api: Api, needs: Needs) -> Iterator[Result]:
    base = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses"
    for name in needs.rendered_classes:
        yield Result(
            f"VolumeSnapshotClass {name}",
            OK,
            "rendered by the package (spec.snapshotClass); cluster-scoped, so whoever applies"
            " the package needs rights on volumesnapshotclasses",
        )
    for name in needs.snapshot_classes:
        check = f"VolumeSnapshotClass {name}"
        status, body = api.get(f"{base}/{name}")
        if status == 200:
            yield Result(
                check,
                OK,
                f"driver {body.get('driver')}, deletionPolicy {body.get('deletionPolicy')}",
            )
        elif status == 404:
            yield Result(
                check,
                MISSING,
                "named by snapshot.className but absent",
                "create it for your CSI driver (blueprints/kubeflow-namespace/"
                "volumesnapshotclass.yaml), or name an existing class in kale.yaml",
            )
        else:
            yield Result(check, UNKNOWN, f"cannot read it (HTTP {status})")
    if not (needs.default_snapshot_class or not needs.known):
        return
    check = "default VolumeSnapshotClass"
    status, body = api.get(base)
    if status != 200:
        if status == 404:
            return  # the API itself is reported missing above
        yield Result(check, UNKNOWN, f"cannot list volumesnapshotclasses (HTTP {status})")
        return
    items = body.get("items") or []
    defaults = [
        i["metadata"]["name"]
        for i in items
        if ((i.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_SNAPSHOT_CLASS)
        == "true"
    ]
    if defaults:
        yield Result(check, OK, ", ".join(defaults))
        return
    yield Result(
        check,
        needs.absent(needs.default_snapshot_class),
        "no class is annotated as the default, and kale.yaml names none for some snapshots"
        if needs.known
        else f"none of {len(items)} classes is the default",
        f"annotate one: kubectl annotate volumesnapshotclass NAME {DEFAULT_SNAPSHOT_CLASS}=true;"
        " or set snapshot.className / spec.snapshotClass in kale.yaml",
    )


# --- the namespace ---------------------------------------------------------------------


def _namespace_labels(api: Api, namespace: str) -> dict[str, str] | int:
    """The namespace's labels, or the HTTP status that kept them from us."""
    status, body = api.get(f"/api/v1/namespaces/{namespace}")
    if status != 200:
        return status
    return dict((body.get("metadata") or {}).get("labels") or {})


def _namespace(namespace: str, labels: dict[str, str] | int, needs: Needs) -> Iterator[Result]:
    check = f"namespace {namespace}"
    if labels == 404:
        yield Result(
            check,
            MISSING,
            "does not exist",
            "create a Kubeflow profile for it (or set metadata.namespace in kale.yaml)",
        )
        return
    if isinstance(labels, int):
        yield Result(
            check,
            UNKNOWN,
            f"cannot read the namespace (HTTP {labels}), so its labels are unchecked",
            f"check `kubectl get namespace {namespace} --show-labels` with a cluster admin",
        )
        return
    key, value = KFP_ENABLED
    if labels.get(key) == value:
        yield Result(check, OK, f"{key}={value}: KFP's profile controller serves it")
    else:
        yield Result(
            check,
            WARN,
            f"no {key}={value}: in a multi-user Kubeflow, KFP's profile controller does not"
            " set the namespace up for runs",
            f"make it a Kubeflow profile namespace, or kubectl label namespace {namespace}"
            f" {key}={value}",
        )
    if not needs.wants(needs.tuning):
        return
    key, value = KATIB_INJECTION
    if labels.get(key) == value:
        yield Result(f"Katib metrics in {namespace}", OK, f"{key}={value}")
    else:
        yield Result(
            f"Katib metrics in {namespace}",
            needs.absent(needs.tuning),
            f"no {key}={value}: Katib adds its metrics collector only to pods of labelled"
            " namespaces, so no trial would report a metric",
            f"kubectl label namespace {namespace} {key}={value}",
        )


def _poddefault(api: Api, namespace: str, needs: Needs) -> Iterator[Result]:
    check = f"PodDefault {namespace}/{PODDEFAULT}"
    path = f"/apis/kubeflow.org/v1alpha1/namespaces/{namespace}/poddefaults/{PODDEFAULT}"
    status, _ = api.get(path)
    if status == 200:
        yield Result(check, OK, "mounts the KFP token into pods labelled access-ml-pipeline")
    elif status == 404:
        yield Result(
            check,
            needs.absent(needs.pod_label),
            "absent: launcher pods (kfpAccess: pod-label) would call KFP without a token",
            "apply blueprints/kubeflow-namespace (kfp-access.yaml) to the namespace, or set"
            " spec.launcher.kfpAccess: token",
        )
    else:
        yield Result(check, UNKNOWN, f"cannot read it (HTTP {status})")


# --- access: SelfSubjectAccessReview for what the user and the launcher need -----------


def _can(api: Api, namespace: str, verb: str, group: str, resource: str) -> bool | None:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": group,
                "resource": resource,
            }
        },
    }
    status, answer = api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body)
    if status not in (200, 201) or not isinstance(answer, dict):
        return None
    return bool((answer.get("status") or {}).get("allowed"))


# What the Role kfg renders for the launcher grants, as (verb, group, resource), and whether
# its pods let Istio inject a sidecar: read from the render module itself (kfg.render
# imports no kfp), so doctor asks for exactly what is rendered.
LAUNCHER_RULES: tuple[tuple[str, str, str], ...] = tuple(
    (verb, group, resource)
    for rule in launcher_render.RULES
    for group in rule["apiGroups"]
    for resource in rule["resources"]
    for verb in rule["verbs"]
)
LAUNCHER_SIDECAR = launcher_render.NO_SIDECAR.get("sidecar.istio.io/inject") != "false"


def _access(api: Api, namespace: str, needs: Needs) -> Iterator[Result]:
    kfp = "pipelines.kubeflow.org"
    asks: list[tuple[str, list[tuple[str, str, str]], str, str]] = [
        (
            "you: runs",
            [("create", kfp, "runs"), ("get", kfp, "pipelines")],
            MISSING,
            "kfg submit starts runs through the KFP API, which asks Kubernetes RBAC",
        ),
    ]
    if needs.wants(needs.tuning):
        asks.append(
            (
                "you: experiments",
                [("get", "kubeflow.org", "experiments"), ("list", "kubeflow.org", "trials")],
                needs.absent(needs.tuning),
                "kfg status reads the Experiment and its Trials",
            )
        )
    if needs.wants(needs.launcher):
        asks.append(
            (
                "launcher Role",
                list(LAUNCHER_RULES),
                WARN,
                "whoever applies launcher.yaml (you, or the GitOps controller) must hold every"
                " permission its Role grants (Kubernetes refuses to grant more)",
            )
        )
    for name, rules, absent, why in asks:
        check = f"access {namespace}: {name}"
        answers = {rule: _can(api, namespace, *rule) for rule in rules}
        if any(a is None for a in answers.values()):
            yield Result(check, UNKNOWN, "SelfSubjectAccessReview failed", why)
            continue
        denied = [f"{v} {r}.{g}" if g else f"{v} {r}" for (v, g, r), a in answers.items() if not a]
        if not denied:
            yield Result(check, OK, f"allowed ({len(rules)} permissions)")
        else:
            yield Result(
                check,
                absent,
                "denied: " + ", ".join(denied),
                f"{why}; ask for edit access to the profile (Kubeflow's kubeflow-edit role)",
            )


# --- Istio ---------------------------------------------------------------------------


def _strict_mtls(api: Api, namespaces: Iterable[str]) -> list[str]:
    """Namespace-wide PeerAuthentications (v1, then v1beta1) that require mutual TLS."""
    found = []
    for namespace in namespaces:
        for version in ("v1", "v1beta1"):
            status, body = api.get(
                f"/apis/security.istio.io/{version}/namespaces/{namespace}/peerauthentications"
            )
            if status != 200:
                continue
            for item in body.get("items") or []:
                spec = item.get("spec") or {}
                if not spec.get("selector") and (spec.get("mtls") or {}).get("mode") == "STRICT":
                    found.append(f"{namespace}/{item['metadata']['name']}")
            break
    return found


def _istio(
    api: Api, namespace: str, labels: dict[str, str] | int, sidecar: bool, kubeflow: str
) -> Iterator[Result]:
    check = f"Istio sidecars in {namespace}"
    if isinstance(labels, int):
        yield Result(check, UNKNOWN, "the namespace's labels are unreadable")
        return
    injected = labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels
    if not injected:
        yield Result(check, OK, "no sidecar injection: trial Jobs end when their container exits")
        return
    if sidecar:
        yield Result(
            check,
            WARN,
            "sidecars are injected into trial pods: a Job's pod keeps running after `kfg trial`"
            " exits, so Katib never sees the trial finish",
            'label the launcher pods sidecar.istio.io/inject: "false"',
        )
        return
    strict = _strict_mtls(api, [ISTIO_ROOT, kubeflow])
    if strict:
        yield Result(
            check,
            WARN,
            "trial pods opt out of the sidecar, but STRICT mutual TLS ("
            + ", ".join(strict)
            + ") refuses plain-text calls to the KFP API",
            "allow plain text to ml-pipeline on port 8888 (a PeerAuthentication with"
            " portLevelMtls PERMISSIVE) or give the launcher pods a sidecar that exits with them",
        )
        return
    yield Result(
        check,
        OK,
        "injection is on; kfg's trial pods opt out (sidecar.istio.io/inject=false)",
    )


# --- without a cluster -----------------------------------------------------------------


def plan(needs: Needs) -> list[tuple[str, str]]:
    """What `diagnose` would check, for `kfg doctor` without a kubeconfig."""
    steps = [
        (
            "APIs",
            f"pipelines.kubeflow.org/v2beta1 Pipeline and PipelineVersion (KFP {KFP})"
            + (", kubeflow.org/v1beta1 Experiment (Katib)" if needs.wants(needs.tuning) else "")
            + (
                ", snapshot.storage.k8s.io/v1 VolumeSnapshot(Class)"
                if needs.wants(needs.snapshots)
                else ""
            )
            + (", kubeflow.org/v1alpha1 PodDefault" if needs.wants(needs.pod_label) else "")
            + ", cert-manager.io/v1",
        ),
        (
            "KFP pipeline store",
            f"the {KFP_DEPLOYMENT} Deployment runs with --{STORE_FLAG}=true (with the database"
            f" store KFP ignores the rendered objects), and the {KFP_WEBHOOK} webhooks exist",
        ),
    ]
    if needs.wants(needs.tuning):
        algorithms = ", ".join([*needs.algorithms, *needs.early_stopping]) or "each algorithm"
        steps.append(
            (
                "Katib",
                f"the {KATIB_CONFIG} ConfigMap lists a service for {algorithms}, Job.v1.batch"
                " trials and the StdOut metrics collector",
            )
        )
    if needs.wants(needs.snapshots):
        named = ", ".join(needs.snapshot_classes) or "named classes"
        steps.append(("VolumeSnapshotClasses", f"{named} exist; a default class when needed"))
    steps += [
        (
            "namespace",
            "exists, carries pipelines.kubeflow.org/enabled"
            + (
                " and katib.kubeflow.org/metrics-collector-injection"
                if needs.wants(needs.tuning)
                else ""
            )
            + (", has the access-ml-pipeline PodDefault" if needs.wants(needs.pod_label) else ""),
        ),
        (
            "access",
            "SelfSubjectAccessReview: you may start runs"
            + (" and read Experiments" if needs.wants(needs.tuning) else "")
            + (", and hold what the launcher's Role grants" if needs.wants(needs.launcher) else ""),
        ),
    ]
    if needs.wants(needs.launcher):
        steps.append(
            (
                "Istio",
                "whether the namespace injects sidecars into trial Jobs, and STRICT mutual TLS",
            )
        )
    return steps


# --- output ----------------------------------------------------------------------------


def table(report: Report) -> str:
    """One line per check, then how to fix each that is not ok."""
    where = report.cluster or "?"
    lines = [f"cluster {where}, namespace {', '.join(report.namespaces) or '-'}", ""]
    rows = [("CHECK", "STATUS", "DETAIL")] + [(r.check, r.status, r.detail) for r in report.results]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for check, status, detail in rows:
        lines.append(f"{check.ljust(widths[0])}  {status.ljust(widths[1])}  {detail}".rstrip())
    fixes = [r for r in report.results if r.status != OK and r.fix]
    if fixes:
        lines += ["", "How to fix:"]
        lines += [f"- {r.check} ({r.status}): {r.fix}" for r in fixes]
    missing = sum(r.status == MISSING for r in report.results)
    lines += [
        "",
        f"{missing} required item{'s' if missing != 1 else ''} missing"
        if missing
        else "everything required is present",
    ]
    return "\n".join(lines) + "\n"


def plan_text(needs: Needs) -> str:
    lines = [
        "no kubeconfig found (set --kubeconfig or KUBECONFIG): nothing was checked.",
        "With a cluster, kfg doctor checks"
        + (f" what {', '.join(needs.pipelines)} need" if needs.known else "")
        + ":",
    ]
    lines += [f"- {name}: {what}" for name, what in plan(needs)]
    return "\n".join(lines) + "\n"


def plan_json(needs: Needs) -> str:
    return json.dumps(
        {
            "cluster": None,
            "ok": True,
            "checks": [{"check": n, "status": "not checked", "detail": w} for n, w in plan(needs)],
        },
        indent=2,
    )


# --- the Kubernetes API through the kubeconfig -----------------------------------------


class KubeApi:
    """`Api` over the kubernetes client, so every kubeconfig auth method works."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def host(self) -> str:
        return str(self.client.configuration.host)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            data = self.client.call_api(
                path,
                method,
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
                _request_timeout=30,
            )
        except ApiException as exc:
            try:
                answer = json.loads(exc.body or "null")
            except ValueError:
                answer = None
            return int(exc.status or 0), answer
        except HTTPError as exc:
            raise DoctorError(f"cannot reach the Kubernetes API at {self.host} ({exc})") from None
        return 200, data

    def get(self, path: str) -> tuple[int, Any]:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return self._call("POST", path, body)


def connect(kubeconfig: Path | None, context: str | None) -> tuple[KubeApi, str] | None:
    """The API and the context's namespace; None when there is no cluster to ask."""
    import os

    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    default = Path(os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION))
    if kubeconfig is None and not default.is_file():
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return None
        try:
            config.load_incluster_config()
        except ConfigException as exc:
            raise DoctorError(f"cannot use the in-cluster configuration: {exc}") from None
        from kubernetes.client import ApiClient

        here = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        namespace = here.read_text().strip() if here.is_file() else "default"
        return KubeApi(ApiClient()), namespace
    path = str(kubeconfig) if kubeconfig else None
    try:
        client = config.new_client_from_config(config_file=path, context=context)
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError) as exc:
        raise DoctorError(f"cannot load the kubeconfig: {exc}") from None
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
    return KubeApi(client), namespace
