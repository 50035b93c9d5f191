"""The one path every command takes: load, check and analyse a kale.yaml."""
