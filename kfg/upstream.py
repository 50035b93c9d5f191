"""The upstream releases kfg renders for and talks to, named in one place.

Everything kfg sends to a cluster follows the behaviour of these releases, read from their
source at these tags; tests that encode such behaviour cite the repository, the tag and the
file. Changing a version here means re-reading what those tests cite.
"""

from __future__ import annotations

# kubeflow/pipelines: the SDK (kfp, kfp-kubernetes, kfp-server-api), the API server, the
# driver and the PipelineVersion webhook, all of one release.
KFP = "2.17.0"
# kubeflow/katib: the Experiment webhooks, the default katib-config and its suggestion services.
KATIB = "v0.19.0"
# argoproj/argo-cd: sync options, sync waves and compare options.
ARGO_CD = "v3.5.1"
# fluxcd/kustomize-controller (staged server-side apply through fluxcd/pkg/ssa).
FLUX_KUSTOMIZE_CONTROLLER = "v1.9.4"
# The Kubernetes API (kube-apiserver) the rendered core objects are written for.
KUBERNETES = "v1.34"
# kubernetes-csi/external-snapshotter: snapshot.storage.k8s.io/v1.
EXTERNAL_SNAPSHOTTER = "v8.6.0"
