"""Start Kubeflow Pipelines runs of rendered pipeline versions: `kfg trial` and `kfg submit`."""
