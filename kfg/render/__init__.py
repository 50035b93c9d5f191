"""`kfg render`: notebook + kale.yaml -> Kubeflow Pipelines manifests as a kustomize/kpt package."""
