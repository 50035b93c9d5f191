"""kfg's assumptions about kfp's internals (kfg/render/kfp_internals.py), checked against the
installed kfp: any kfp release that breaks one fails here first, by name."""

# No `from __future__ import annotations`: kfp reads component annotations as types.

import subprocess
import sys
from pathlib import Path
from typing import Any

import kfp

from kfg.upstream import KFP


def test_kfp_is_the_release_kfg_targets() -> None:
    assert kfp.__version__ == KFP  # bumping it means re-checking everything below


def test_the_runtime_flag_still_skips_kfps_client_and_the_kubernetes_package() -> None:
    # kfp 2.17.0 sdk/python/kfp/__init__.py imports kfp.client unless _KFP_RUNTIME is set.
    probe = (
        "import sys\n"
        "from kfg.render.kfp_internals import import_kfp_without_its_client\n"
        "import_kfp_without_its_client()\n"
        "from kfp import compiler, dsl\n"
        "print(sorted(m for m in ('kfp.client', 'kubernetes') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_compiler_writes_manifests_through_its_module_level_yaml(tmp_path: Path) -> None:
    # kfp 2.17.0 sdk/python/kfp/compiler/pipeline_spec_builder.py
    # _write_kubernetes_manifest_to_file: `yaml.dump_all(documents=documents, stream=...)`.
    from kfp import compiler, dsl
    from kfp.compiler import pipeline_spec_builder
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    import kfg.render.kfp_internals as internals

    assert pipeline_spec_builder.yaml.__name__ == "yaml"  # what the swap replaces

    @dsl.component(base_image="python:3.11")
    def one(x: int) -> int:
        return x

    @dsl.pipeline(name="p")
    def pipeline() -> None:
        one(x=1)

    written = tmp_path / "p.yaml"
    options = KubernetesManifestOptions(pipeline_version_name="v", include_pipeline_manifest=True)
    with internals.documents_of_the_compiler() as documents:
        compiler.Compiler().compile(
            pipeline,
            str(written),
            kubernetes_manifest_options=options,
            kubernetes_manifest_format=True,
        )
    assert [d["kind"] for d in documents] == ["Pipeline", "PipelineVersion"], (
        "kfp's compiler no longer writes through pipeline_spec_builder.yaml"
    )
    assert written.read_text() == ""  # kept, not written
    assert pipeline_spec_builder.yaml.__name__ == "yaml"  # restored


def test_task_setters_still_name_themselves_through_inspect_stack() -> None:
    # kfp 2.17.0 sdk/python/kfp/dsl/pipeline_task.py _ensure_container_spec_exists:
    # `caller_method_name = inspect.stack()[1][3]`, its only use of `inspect`.
    import inspect

    from kfp import dsl
    from kfp.dsl import pipeline_task

    import kfg.render.kfp_internals as internals

    assert pipeline_task.inspect is inspect  # what the swap replaces

    @dsl.component(base_image="python:3.11")
    def one(x: int) -> int:
        return x

    @dsl.pipeline(name="inner")
    def inner() -> None:
        one(x=1)

    messages: list[str] = []

    @dsl.pipeline(name="outer")
    def outer() -> None:
        task = inner()  # a pipeline used as a component has no container to configure
        for cheap in (False, True):
            try:
                if cheap:
                    with internals.cheap_task_stacks():
                        task.set_cpu_request("1")
                else:
                    task.set_cpu_request("1")
            except ValueError as exc:
                messages.append(str(exc))

    assert outer is not None
    assert len(messages) == 2 and messages[0] == messages[1]
    assert messages[0].startswith("set_cpu_request can only be used on single-step")
    assert pipeline_task.inspect is inspect  # restored


def test_the_cheap_stack_has_inspects_frames_names_and_lines() -> None:
    import inspect

    import kfg.render.kfp_internals as internals

    def probe() -> tuple[list[tuple[Any, ...]], list[inspect.FrameInfo]]:
        cheap, full = internals._InspectForKfpTasks.stack(), inspect.stack()
        return cheap, full

    cheap, full = probe()
    assert [f[1:4] for f in cheap[1:]] == [(f.filename, f.lineno, f.function) for f in full[1:]]
    assert cheap[0][3] == full[0].function == "probe"


def test_tasks_still_carry_their_platform_config_as_a_dict() -> None:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def one(x: int) -> int:
        return x

    @dsl.pipeline(name="p")
    def pipeline() -> None:
        task = one(x=1)
        assert isinstance(task.platform_config, dict)

    assert pipeline is not None


def test_kfp_reads_a_component_functions_source_as_kfg_generated_it(tmp_path: Path) -> None:
    """kfp 2.17.0 kfp/dsl/component_factory.py `_get_function_source_definition`
    (inspect.getsource, dedent, drop decorators) returns exactly the text kfg generated,
    which `known_function_sources` hands it without the search; hostile cell text too."""
    from kfp.dsl import component_factory

    from kfg.core.load import load_pipeline
    from kfg.render.components import build_component
    from kfg.render.kfp_build import _function
    from kfg.render.kfp_internals import known_function_sources
    from tests.conftest import EXAMPLES
    from tests.pipelines import make

    odd = make(
        tmp_path,
        [
            ("code", "x = '''\ndef not_a_function():\n'''\nif x:\n\tpass  # a tab"),
            ("code", "@property\ndef y():\n    return 'é\\\\'\nz = 1"),
        ],
        [{"name": "a", "cells": [1]}, {"name": "b", "cells": [2]}],
    )
    results = [load_pipeline(EXAMPLES / n / "kale.yaml") for n in ("wine", "digits")] + [odd]
    checked = 0
    for result in results:
        assert result.pipeline and result.flow and result.notebook, result.diagnostics
        for step in result.pipeline.steps:
            component = build_component(result.pipeline, result.flow, result.notebook, step)
            function = _function(component, result.pipeline.name)
            searched = component_factory._get_function_source_definition(function)
            with known_function_sources():
                known = component_factory._get_function_source_definition(function)
            assert searched == known == component.source
            checked += 1
    assert checked == 14
