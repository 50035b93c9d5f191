"""What rendered objects carry so that Argo CD and Flux apply them safely, in order.

Kubeflow runs keep referring to the pipeline version they ran; Katib experiments and
restored volumes to their snapshots. A GitOps controller deletes whatever disappears from
git, so every object whose loss loses data is marked: Argo CD neither prunes it nor deletes
it with its Application and does not count it as drift once it left git; Flux does not
garbage-collect it. Sync waves order the objects that reference each other.
"""

from __future__ import annotations

from typing import Any

ARGOCD_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
ARGOCD_COMPARE_OPTIONS = "argocd.argoproj.io/compare-options"
ARGOCD_SYNC_WAVE = "argocd.argoproj.io/sync-wave"
FLUX_PRUNE = "kustomize.toolkit.fluxcd.io/prune"

# Sync waves: snapshots of input data, then the pipeline, its versions, then experiments.
WAVE_SNAPSHOT = 0
WAVE_PIPELINE = 1
WAVE_PIPELINE_VERSION = 2
WAVE_EXPERIMENT = 3
WAVE_RUN = 4

MANAGED_BY = {"app.kubernetes.io/managed-by": "kfg"}


def keep(metadata: dict[str, Any], *, wave: int, server_side: bool = False) -> None:
    """Mark an object as never pruned nor deleted by a controller, and place it in a wave.

    `server_side` asks Argo CD for server-side apply, which objects too large for the
    last-applied-configuration annotation of client-side apply (256 KiB) need.
    """
    options = ["Prune=false", "Delete=false"]
    if server_side:
        options.append("ServerSideApply=true")
    annotations = metadata.setdefault("annotations", {})
    annotations[ARGOCD_SYNC_WAVE] = str(wave)
    annotations[ARGOCD_SYNC_OPTIONS] = ",".join(options)
    annotations[ARGOCD_COMPARE_OPTIONS] = "IgnoreExtraneous"
    annotations[FLUX_PRUNE] = "disabled"


def is_kept(obj: dict[str, Any]) -> bool:
    """Whether both controllers would leave the object alone when it leaves git."""
    annotations = obj.get("metadata", {}).get("annotations", {})
    options = [o.strip() for o in annotations.get(ARGOCD_SYNC_OPTIONS, "").split(",")]
    return "Prune=false" in options and annotations.get(FLUX_PRUNE) == "disabled"
