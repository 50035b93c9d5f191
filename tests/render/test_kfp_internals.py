"""kfg's assumptions about kfp's internals (kfg/render/kfp_internals.py), checked against the
installed kfp: any kfp release that breaks one fails here first, by name."""

# No `from __future__ import annotations`: kfp reads component annotations as types.

import subprocess
import sys
from pathlib import Path

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
    from kfp import compiler, dsl
    from kfp.compiler import pipeline_spec_builder

    import kfg.render.kfp_internals as internals

    assert pipeline_spec_builder.yaml.__name__ == "yaml"  # what the swap replaces
    calls: list[int] = []
    original = internals._LibyamlForKfp.dump_all

    def spy(documents: object, stream: object = None, **options: object) -> object:
        calls.append(1)
        return original(documents, stream, **options)

    @dsl.component(base_image="python:3.11")
    def one(x: int) -> int:
        return x

    @dsl.pipeline(name="p")
    def pipeline() -> None:
        one(x=1)

    internals._LibyamlForKfp.dump_all = staticmethod(spy)  # type: ignore[method-assign]
    try:
        with internals.libyaml_in_the_compiler():
            compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    finally:
        internals._LibyamlForKfp.dump_all = staticmethod(original)  # type: ignore[method-assign]
    assert calls, "kfp's compiler no longer writes through pipeline_spec_builder.yaml"
    assert pipeline_spec_builder.yaml.__name__ == "yaml"  # restored


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
