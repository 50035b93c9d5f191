"""kale.yaml: loading, checking and the typed model the rest of kfg works from."""

from kfg.config.load import LoadResult, find_config_files, load_pipeline

__all__ = ["LoadResult", "find_config_files", "load_pipeline"]
