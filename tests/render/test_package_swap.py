"""Killing `kfg render` at any step of writing leaves the old package or the new one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kfg.render import package as package_module
from kfg.render.package import GENERATED, Package, exchange, write
from tests.conftest import REPO

OLD = {"a.yaml": f"{GENERATED} old\nold: 1\n", "sub/b.yaml": f"{GENERATED} old\nb: old\n"}
NEW = {"a.yaml": f"{GENERATED} new\nnew: 2\n", "c.yaml": f"{GENERATED} new\nc: new\n"}

# Run write() in a child that SIGKILLs itself when the writer reaches `step`; with
# `exchange` disabled when asked, to check the fallback too.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from kfg.render import package as p

    target, step, fallback = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"

    def die(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    p._step = die
    if fallback:
        p.exchange = lambda a, b: False
    p.write(p.Package(dict(NEW)), target)
    """
)


def _tree(target: Path) -> dict[str, str]:
    return {
        path.relative_to(target).as_posix(): path.read_text()
        for path in sorted(target.rglob("*"))
        if path.is_file()
    }


def _kill_at(tmp_path: Path, step: str, fallback: bool) -> Path:
    target = tmp_path / "deploy"
    write(Package(dict(OLD)), target)
    child = f"NEW = {NEW!r}\n" + CHILD
    result = subprocess.run(
        [sys.executable, "-c", child, str(target), step, "1" if fallback else "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == (-9 if step else 0), result.stderr
    return target


@pytest.mark.parametrize("step", ["staged", "exchanged", "replaced", ""])
def test_a_kill_at_any_step_leaves_the_old_or_the_new_package(tmp_path: Path, step: str) -> None:
    target = _kill_at(tmp_path, step, fallback=False)
    expected = OLD if step == "staged" else NEW
    assert _tree(target) == expected


def test_the_exchange_swaps_two_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("b")
    if not exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this kernel or file system cannot exchange")
    assert (tmp_path / "a" / "x").read_text() == "b"
    assert (tmp_path / "b" / "x").read_text() == "a"


def test_without_an_exchange_the_fallback_restores_the_old_package_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "deploy"
    write(Package(dict(OLD)), target)
    monkeypatch.setattr(package_module, "exchange", lambda a, b: False)

    def fail(name: str) -> None:
        if name == "retired":
            raise OSError("disk gone")

    monkeypatch.setattr(package_module, "_step", fail)
    with pytest.raises(OSError):
        write(Package(dict(NEW)), target)
    # The failure came after the old package was renamed away: it is put back.
    assert _tree(target) == OLD
    monkeypatch.setattr(package_module, "_step", lambda name: None)
    write(Package(dict(NEW)), target)
    assert _tree(target) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]


def test_a_failing_exchange_leaves_the_old_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "deploy"
    write(Package(dict(OLD)), target)

    def broken(first: Path, second: Path) -> bool:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(package_module, "exchange", broken)
    with pytest.raises(OSError):
        write(Package(dict(NEW)), target)
    assert _tree(target) == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]
