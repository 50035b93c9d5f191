"""kale.yaml: loading, checking and the typed model the rest of kfg works from."""
