"""Reading what users give kfg: YAML with positions, and input files read safely."""
