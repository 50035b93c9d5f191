"""How a step's pod receives kfg's step runtime: once per pipeline, not once per step.

Embedding the runtime (about 26 KB of source) in every component made each step cost
about 32 KB of PipelineVersion, so a 50-step pipeline passed etcd's default request limit
(1.5 MiB) and the API server refused it. By default (`runtime: mounted`) the package
carries the runtime once, as an immutable ConfigMap named after its content, and every
step mounts it with the Kubernetes platform spec's `configMapAsVolume`, which the KFP
2.17.0 driver turns into a pod volume (kubeflow/pipelines 2.17.0 backend/src/v2/driver/
k8s.go). The component keeps only a few lines that read the file and check its SHA-256,
so:

- a pipeline version stays immutable: its components name the exact runtime by digest,
  and a new runtime is a new ConfigMap beside the old one (kept, never pruned, since old
  versions still mount it);
- KFP's cache key, which covers the component's command, changes when the runtime does;
- nothing is fetched from a package index for the runtime.

The mount is optional, so a pod whose namespace lacks the ConfigMap starts and fails at
once with a message naming it, instead of waiting in ContainerCreating. `KFG_RUNTIME_DIR`
points the component at another folder holding the same file (what `kfp.local`, which
ignores the platform spec, needs); the digest check still applies.
"""

from __future__ import annotations

from typing import Any

from kfg import runtime
from kfg.kube.names import DNS_LABEL_MAX, content_hash, versioned
from kfg.render import gitops

MOUNT_PATH = "/kfg/runtime"
FILE_NAME = "step.py"
DIRECTORY_VARIABLE = "KFG_RUNTIME_DIR"
DIGEST_IN_NAME = 8


def runtime_text() -> str:
    """The runtime exactly as it is on disk (no newline translation: the digest is of it)."""
    return runtime.source_bytes().decode("utf-8")


def runtime_digest() -> str:
    return runtime.source_digest()


def config_map_name(pipeline: str) -> str:
    """One ConfigMap per pipeline and runtime version.

    Per pipeline, not shared: two packages (or two Argo CD Applications) owning one object
    would fight over it, and an aggregate package would hold it twice, which kustomize
    refuses. The driver names the pod volume after it, so it is a DNS-1123 label. A name
    too long for one is shortened, and its digest then covers the whole pipeline name too:
    `churn-model-with-gradient-boosting-and-calibration-v1` and `...-v2` share the first
    54 characters, and would otherwise render the same ConfigMap twice.
    """
    base = f"{pipeline}-runtime"
    digest = runtime_digest()
    if len(base) + 1 + DIGEST_IN_NAME > DNS_LABEL_MAX:
        digest = content_hash([digest, pipeline])
    return versioned(base, digest[:DIGEST_IN_NAME])


def config_map(pipeline: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": config_map_name(pipeline), "labels": dict(labels)}
    if namespace:
        metadata["namespace"] = namespace
    # Old pipeline versions mount it by name: never pruned, applied before the versions.
    gitops.keep(metadata, wave=gitops.WAVE_PIPELINE)
    metadata["annotations"] = dict(sorted(metadata["annotations"].items()))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "immutable": True,
        "data": {FILE_NAME: runtime_text()},
    }


def volume(pipeline: str) -> dict[str, Any]:
    """The `configMapAsVolume` entry of a step's Kubernetes platform config."""
    name = config_map_name(pipeline)
    return {
        "configMapName": name,
        "configMapNameParameter": {"runtimeValue": {"constant": name}},
        "mountPath": MOUNT_PATH,
        "optional": True,
    }


def loader_lines(pipeline: str) -> list[str]:
    """The component body's lines that load the mounted runtime and bind `main`."""
    name = config_map_name(pipeline)
    missing = (
        f"kfg: the step runtime is not at {{path}}: apply the package's pipeline stage"
        f" (ConfigMap {name}) in this namespace"
    )
    other = (
        f"kfg: {{path}} is not the step runtime this pipeline version was rendered with"
        f" (ConfigMap {name})"
    )
    return [
        "    import hashlib",
        "    import os",
        "    import types",
        "",
        f'    path = os.path.join(os.environ.get("{DIRECTORY_VARIABLE}", "{MOUNT_PATH}"),'
        f' "{FILE_NAME}")',
        "    try:",
        '        with open(path, "rb") as handle:',
        "            runtime = handle.read()",
        "    except OSError:",
        f'        raise SystemExit(f"{missing}") from None',
        f'    if hashlib.sha256(runtime).hexdigest() != "{runtime_digest()}":',
        f'        raise SystemExit(f"{other}")',
        '    module = types.ModuleType("kfg_step_runtime")',
        '    exec(compile(runtime, "kfg_step_runtime.py", "exec"), module.__dict__)',
        "    main = module.main",
    ]
