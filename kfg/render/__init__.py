"""`kfg render`: notebook + kale.yaml -> Kubeflow Pipelines manifests as a kustomize/kpt package.

Importing this package costs nothing: only `kfp_build`, the one module that uses kfp,
imports it, so `kfg doctor` and the launcher can share the render modules' facts.
"""
