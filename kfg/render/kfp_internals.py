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
from types import FrameType
from typing import Any


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


class _KeepForKfp:
    """Stands in for the `yaml` module inside kfp's compiler while it writes manifests.

    kfp builds the Pipeline and PipelineVersion documents as dicts and hands them to
    `yaml.dump_all` to write. kfg needs the dicts, not the text: keeping them saves writing
    the YAML, reading it back and a scratch directory, about a third of a render. Only
    `dump_all`, the function the compiler calls, is provided; it writes nothing.
    """

    def __init__(self) -> None:
        self.documents: list[Any] = []

    def dump_all(self, documents: Any, stream: Any = None, **options: Any) -> None:
        self.documents.extend(documents)


@contextlib.contextmanager
def documents_of_the_compiler() -> Iterator[list[Any]]:
    """The documents kfp's compiler would write while this is active (a module attribute
    swap); the file it opens receives nothing."""
    from kfp.compiler import pipeline_spec_builder

    original = pipeline_spec_builder.yaml
    keep = _KeepForKfp()
    pipeline_spec_builder.yaml = keep
    try:
        yield keep.documents
    finally:
        pipeline_spec_builder.yaml = original


class _InspectForKfpTasks:
    """Stands in for the `inspect` module inside kfp.dsl.pipeline_task while kfg builds a
    pipeline.

    Every resource setter of a task (`set_cpu_request`, `set_env_variable`...) calls
    `inspect.stack()[1][3]`, the name of the setter, for an error message it may need.
    `inspect.stack` reads the source file of every frame on the stack to do so: a fifth of
    a render. This `stack` gives the same frames, files, lines and function names, without
    the source lines (which kfp does not read).
    """

    @staticmethod
    def stack() -> list[tuple[Any, ...]]:
        frames = []
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            frames.append((frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
            frame = frame.f_back
        return frames


@contextlib.contextmanager
def cheap_task_stacks() -> Iterator[None]:
    """kfp's task setters find their own name without reading source files while this is
    active (a module attribute swap)."""
    from kfp.dsl import pipeline_task

    original = pipeline_task.inspect
    pipeline_task.inspect = _InspectForKfpTasks
    try:
        yield
    finally:
        pipeline_task.inspect = original


SOURCE_ATTRIBUTE = "__kfg_source__"


@contextlib.contextmanager
def known_function_sources() -> Iterator[None]:
    """kfp takes a component function's source from an attribute kfg set, instead of
    finding it again, while this is active (a module attribute swap).

    kfp's `_get_function_source_definition` calls `inspect.getsource`, which tokenizes the
    source kfg generated and put in linecache a moment before, only to return the same
    text (kfg's function has no decorator and no indentation to strip): about a sixth of a
    render. tests/render/test_kfp_internals.py checks both give the same text.
    """
    from kfp.dsl import component_factory

    original = component_factory._get_function_source_definition

    def known(func: Any) -> str:
        text = getattr(func, SOURCE_ATTRIBUTE, None)
        return text if isinstance(text, str) else str(original(func))

    component_factory._get_function_source_definition = known
    try:
        yield
    finally:
        component_factory._get_function_source_definition = original


def set_kubernetes_config(task: Any, config: dict[str, Any]) -> None:
    """A task's Kubernetes platform spec, written whole: kfp-kubernetes would build the
    same structure one setting at a time but imports the Kubernetes client to do it."""
    task.platform_config["kubernetes"] = config
