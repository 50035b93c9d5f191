"""kfg in GitOps pipelines: the KRM function and the pull-request summary."""
