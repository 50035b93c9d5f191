"""Every use kfg makes of kfp's internals, in one place, pinned to kfp 2.17.0.

kfp is used through its public API (`dsl`, `compiler`) everywhere else. What is here
reaches under it, for speed or for what the API does not offer; tests/render/
test_kfp_internals.py checks each assumption against the installed kfp and fails loudly
when kfp changes under it (kfp is pinned in pyproject.toml for that reason).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import yaml


def import_kfp_without_its_client() -> None:
    """Import the kfp package without `kfp.Client` and the Kubernetes API client.

    `import kfp` also imports its REST client, which imports the `kubernetes` package:
    two thirds of a second that rendering never uses. kfp skips those imports when its
    executor's `_KFP_RUNTIME` flag is set; the flag is set only while the top-level package
    is imported, so `kfp.dsl` and `kfp.compiler` still load completely.
    """
    if "kfp" in sys.modules:
        return
    previous = os.environ.get("_KFP_RUNTIME")
    os.environ["_KFP_RUNTIME"] = "true"
    try:
        import kfp  # noqa: F401
    finally:
        if previous is None:
            del os.environ["_KFP_RUNTIME"]
        else:
            os.environ["_KFP_RUNTIME"] = previous


_FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LibyamlForKfp:
    """Stands in for the `yaml` module inside kfp's compiler while it writes manifests.

    kfp serialises with PyYAML's pure-Python emitter, which takes most of a second for a
    pipeline that embeds its code; libyaml's emitter writes the same documents about ten
    times faster. Only `dump_all`, the function the compiler calls, is provided.
    """

    @staticmethod
    def dump_all(documents: Any, stream: Any = None, **options: Any) -> Any:
        return yaml.dump_all(documents, stream, Dumper=_FAST_DUMPER, **options)


@contextlib.contextmanager
def libyaml_in_the_compiler() -> Iterator[None]:
    """kfp's compiler writes with libyaml while this is active (module attribute swap)."""
    from kfp.compiler import pipeline_spec_builder

    original = pipeline_spec_builder.yaml
    pipeline_spec_builder.yaml = _LibyamlForKfp
    try:
        yield
    finally:
        pipeline_spec_builder.yaml = original


def set_kubernetes_config(task: Any, config: dict[str, Any]) -> None:
    """A task's Kubernetes platform spec, written whole: kfp-kubernetes would build the
    same structure one setting at a time but imports the Kubernetes client to do it."""
    task.platform_config["kubernetes"] = config
