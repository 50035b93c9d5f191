"""Commands that talk to a cluster: status, doctor and restore."""
