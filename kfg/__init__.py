"""kfg: ship Jupyter notebooks as Kubeflow pipelines, declaratively."""

__version__ = "0.1.0"
