"""The local engine: `kfg run` executes a pipeline on this machine with a step cache."""
