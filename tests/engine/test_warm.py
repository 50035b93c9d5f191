"""The warm step server: kept between runs, forked steps behave as fresh ones, and it
leaves when asked, when idle, and whenever what it preloaded may be stale."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfg.engine import runner, warm
from tests.pipelines import make, messages

PRELOAD = ["kfg.runtime.step", "kfg.engine.worker", "json"]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Private servers for this test: its own (short: a socket path has room for about
    100 bytes) socket directory, and its own idle time."""
    sockets = Path(tempfile.mkdtemp(prefix="kfgw-", dir="/tmp"))
    monkeypatch.setenv(warm.DIRECTORY_VARIABLE, str(sockets / "warm"))
    monkeypatch.setenv(warm.IDLE_VARIABLE, "30")
    monkeypatch.setattr(runner, "_WARM", {})
    yield sockets
    warm.stop_servers()
    shutil.rmtree(sockets, ignore_errors=True)


def _kfg_run(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`kfg run` in its own process, from the folder of `config`, as a user starts it."""
    command = [sys.executable, "-m", "kfg", "run", str(config), *options]
    return subprocess.run(command, capture_output=True, text=True, cwd=config.parent, timeout=120)


def _server_pid(address: Path) -> int:
    """The pid the server at `address` wrote beside its socket, once it was listening."""
    pid = int(address.with_suffix(".ready").read_text())
    os.kill(pid, 0)  # alive
    return pid


def _step_spec(tmp_path: Path, name: str, code: str) -> tuple[Path, Path]:
    work = tmp_path / name
    work.mkdir()
    spec = {
        "pipeline": "p",
        "step": name,
        "prelude": [],
        "cells": [[1, code]],
        "parameters": {},
        "inputs": {},
        "outputs": {},
        "metrics": {},
        "consumers": {},
        "report": str(work / "report.html"),
        "result": str(work / "result.json"),
    }
    (work / "spec.json").write_text(json.dumps(spec))
    return work / "spec.json", work / "log.txt"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_steps_fork_from_one_server_in_the_callers_directory_and_environment(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = warm.ensure(PRELOAD)
    assert address is not None and address.exists()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code = "import os\nprint('cwd', os.getcwd())\nprint('ppid', os.getppid())"
    spec, log = _step_spec(tmp_path, "one", code)
    step = warm.start_step(address, spec, log)
    assert step is not None and step.wait() == 0
    text = log.read_text()
    assert f"cwd {here}" in text
    server = _server_pid(address)
    assert f"ppid {server}" in text  # forked by the server, not started afresh
    # A second ask finds the same server.
    assert warm.ensure(PRELOAD) == address
    spec, log = _step_spec(tmp_path, "two", "print('again')")
    step = warm.start_step(address, spec, log)
    assert step is not None and step.wait() == 0
    assert _server_pid(address) == server


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_changed_environment_or_package_gets_another_server(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = warm.ensure(PRELOAD)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # read by numpy when it is imported
    assert warm.ensure(PRELOAD) not in (None, first)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert warm.ensure(PRELOAD) == first
    # A package installed over the preloaded one (its files change) means another key.
    package = tmp_path / "site" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    before = warm.key([*PRELOAD, "mypkg"], dict(os.environ))
    time.sleep(0.01)
    (package / "__init__.py").write_text("VALUE = 2\n")
    os.utime(package / "__init__.py", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert warm.key([*PRELOAD, "mypkg"], dict(os.environ)) != before
    # Shell bookkeeping does not.
    assert warm.key(PRELOAD, {"PWD": "/a"}) == warm.key(PRELOAD, {"PWD": "/b"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_the_server_leaves_when_idle_when_asked_and_after_its_steps(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(warm.IDLE_VARIABLE, "0.5")
    address = warm.ensure(PRELOAD)
    assert address is not None
    deadline = time.monotonic() + 20
    while address.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not address.exists()  # idle: it left and took its socket
    assert not address.with_suffix(".log").exists()  # and its empty log
    monkeypatch.setenv(warm.IDLE_VARIABLE, "30")
    address = warm.ensure(PRELOAD)
    assert address is not None
    spec, log = _step_spec(tmp_path, "slow", "import time\ntime.sleep(1.5)\nprint('finished')")
    step = warm.start_step(address, spec, log)
    assert step is not None
    assert warm.stop_servers() == 1
    assert step.wait() == 0  # asked to leave, it still sees its running step through
    assert "finished" in log.read_text()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_socket_left_by_a_killed_server_is_replaced(servers: Path, tmp_path: Path) -> None:
    address = warm.ensure(PRELOAD)
    assert address is not None
    os.kill(_server_pid(address), signal.SIGKILL)
    time.sleep(0.2)
    assert address.exists()  # nobody cleaned up
    assert warm.ensure(PRELOAD) == address
    spec, log = _step_spec(tmp_path, "after", "print('served')")
    step = warm.start_step(address, spec, log)
    assert step is not None and step.wait() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
@pytest.mark.parametrize("prestarted", [False, True], ids=["started-here", "prestarted"])
def test_a_server_slow_to_start_is_waited_for_while_it_lives(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prestarted: bool
) -> None:
    # A busy machine (a CI worker next to another) can take seconds to start an
    # interpreter: the caller that started the server waits for it, rather than give up
    # after CONNECT_TIMEOUT and import the prelude again in a forkserver of its own.
    slow = tmp_path / "slow-python"
    delay = warm.CONNECT_TIMEOUT + 1.0
    slow.write_text(f'#!/bin/sh\nsleep {delay}\nexec "{sys.executable}" "$@"\n')
    slow.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(slow))
    started = time.monotonic()
    if prestarted:  # as `kfg.cli.main` does before it knows the preload for sure
        assert warm.ensure(PRELOAD, wait=False) is None
    address = warm.ensure(PRELOAD)
    assert address is not None
    assert time.monotonic() - started >= delay
    spec, log = _step_spec(tmp_path, "served", "print('served')")
    step = warm.start_step(address, spec, log)
    assert step is not None and step.wait() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_server_that_dies_starting_is_not_waited_for(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    started = time.monotonic()
    assert warm.ensure(PRELOAD) is None
    assert time.monotonic() - started < warm.CONNECT_TIMEOUT + 1.0


def test_zero_idle_turns_it_off(servers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(warm.IDLE_VARIABLE, "0")
    assert warm.ensure(PRELOAD) is None


def test_a_directory_others_can_enter_is_not_used(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = servers / "warm"
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)
    assert warm.socket_directory() is None
    assert warm.ensure(PRELOAD) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_second_run_forks_its_steps_from_the_first_runs_server(
    servers: Path, tmp_path: Path
) -> None:
    """Two `kfg run` processes: the second one's steps come from the server the first
    started, so the prelude is imported once for both."""
    result = make(
        tmp_path,
        [("code", "import json"), ("code", "import os\nprint('parent', os.getppid())")],
        [{"name": "who", "cells": [2]}],
        prelude=[1],
    )
    assert result.ok, messages(result)
    config = tmp_path / "kale.yaml"
    parents = []
    for _ in range(2):
        ran = _kfg_run(config, "--no-cache", "--json")
        assert ran.returncode == 0, ran.stderr
        log = Path(json.loads(ran.stdout)["steps"][0]["log"]).read_text()
        parents += [line.split()[1] for line in log.splitlines() if line.startswith("parent")]
    (address,) = (servers / "warm").glob("*.sock")
    assert parents == [str(_server_pid(address))] * 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_stop_servers_can_wait_until_they_are_gone_and_leaves_no_pid_file(
    servers: Path,
) -> None:
    address = warm.ensure(PRELOAD)
    assert address is not None
    pid = _server_pid(address)
    assert warm.stop_servers(wait=20) == 1
    assert not address.with_suffix(".ready").exists()
    _until_dead(pid)  # this test's process started it and has not reaped it: a zombie


def _run_step(address: Path, tmp_path: Path, name: str, code: str) -> str:
    spec, log = _step_spec(tmp_path, name, code)
    step = warm.start_step(address, spec, log)
    assert step is not None and step.wait() == 0, log.read_text()
    return log.read_text()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_the_server_learns_what_steps_import_from_the_packages_it_holds(
    servers: Path, tmp_path: Path
) -> None:
    # A library's first call imports more of it (scikit-learn's first fit on a DataFrame
    # imports narwhals' pandas layer): once one step has, later steps find it imported.
    address = warm.ensure([*PRELOAD, "email"])
    assert address is not None
    check = (
        "import sys\n"
        "print('held', *(m in sys.modules for m in ('email.parser', 'json.tool', 'mine')))"
    )
    assert "held False False False" in _run_step(address, tmp_path, "before", check)
    project = tmp_path / "project"
    (project / "mine").mkdir(parents=True)
    (project / "mine" / "__init__.py").write_text("")
    (project / "mine" / "part.py").write_text("VALUE = 1\n")
    code = (
        "import email, sys\n"
        "email.message_from_string('Subject: hi')  # imports email.parser for itself\n"
        f"sys.path.insert(0, {str(project)!r})\n"
        "import mine.part\n"
        "import json.tool\n"
    )
    _run_step(address, tmp_path, "imports", code)
    # email.parser is what the library imported for itself, from a package the server
    # holds: learned. The project's own package never is (an edit to it must reach the
    # next step), nor what a cell imports itself (it may change other modules, as
    # sklearn.experimental's enablers do, and each step must do it as its pod will).
    assert "held True False False" in _run_step(address, tmp_path, "after", check)


def _install_spinner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An installed package (only those are learned), in the user's site-packages, whose
    submodule `spinner.background` starts a thread: `spinner.start()` imports it as a
    library's first call would. The preload list of a server holding `spinner`."""
    base = tmp_path / "userbase"
    monkeypatch.setenv("PYTHONUSERBASE", str(base))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = base / "lib" / version / "site-packages"
    (site / "spinner").mkdir(parents=True)
    (site / "spinner" / "__init__.py").write_text("def start():\n    import spinner.background\n")
    (site / "spinner" / "background.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return [*PRELOAD, "spinner"]


def _until_gone(*paths: Path) -> None:
    deadline = time.monotonic() + 10
    while any(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_learned_import_that_starts_a_thread_retires_the_server(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process with a second thread must not fork (the child may inherit a lock that
    # thread held): the server stops taking steps and the next run starts a fresh one.
    preload = _install_spinner(tmp_path, monkeypatch)
    address = warm.ensure(preload)
    assert address is not None
    first = _server_pid(address)
    _run_step(address, tmp_path, "spins", "import spinner\nspinner.start()")
    _until_gone(address)
    assert not address.exists()  # it took no step after learning
    again = warm.ensure(preload)
    assert again == address
    assert _server_pid(address) != first
    log = _run_step(address, tmp_path, "fresh", "import threading\nprint(threading.active_count())")
    assert log.split()[-1] == "1"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_the_next_server_of_a_key_starts_with_what_the_last_one_learned(
    servers: Path, tmp_path: Path
) -> None:
    preload = [*PRELOAD, "email"]
    address = warm.ensure(preload)
    assert address is not None
    _run_step(address, tmp_path, "parses", "import email\nemail.message_from_string('a: b')")
    _run_step(address, tmp_path, "next", "pass")  # forked once the server has learned
    assert "email.parser" in address.with_suffix(".learned").read_text().split()
    first = _server_pid(address)
    warm.stop_servers(wait=10)
    # A server that left (idle) does not take what it learned along: the next one of the
    # same key imports it as it starts, once, instead of in each of its first steps.
    assert warm.ensure(preload) == address
    assert _server_pid(address) != first
    check = "import sys\nprint('held', 'email.parser' in sys.modules)"
    assert "held True" in _run_step(address, tmp_path, "check", check)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_recalled_module_that_starts_a_thread_is_forgotten(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preload = _install_spinner(tmp_path, monkeypatch)
    folder = servers / "warm"
    folder.mkdir(mode=0o700)
    name = warm.key(preload, dict(os.environ))
    memory, address = folder / f"{name}.learned", folder / f"{name}.sock"
    memory.write_text("spinner.background\n")  # say, spinner 2 started a thread there
    # The server retires as soon as it has imported its preload: the caller may or may not
    # see it answer first.
    warm.ensure(preload)
    _until_gone(address, memory)
    assert not address.exists() and not memory.exists()  # it served nothing and forgot
    again = warm.ensure(preload)
    assert again == address
    log = _run_step(address, tmp_path, "fresh", "import threading\nprint(threading.active_count())")
    assert log.split()[-1] == "1"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_steps_fork_from_a_frozen_heap(servers: Path, tmp_path: Path) -> None:
    # A full collection in a step would otherwise write to every object the server holds
    # (copying the pages a fork shares): the server freezes them before serving.
    address = warm.ensure(PRELOAD)
    assert address is not None
    log = _run_step(address, tmp_path, "gc", "import gc\nprint('frozen', gc.get_freeze_count())")
    frozen = int(next(line for line in log.splitlines() if line.startswith("frozen")).split()[1])
    assert frozen > 1000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_the_server_imports_without_collecting_and_its_steps_collect(
    servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Collections during a large import free next to nothing and cost a tenth of it; a
    # step must still collect its garbage as it would in its pod.
    base = tmp_path / "userbase"  # an installed package, as only those are learned
    monkeypatch.setenv("PYTHONUSERBASE", str(base))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = base / "lib" / version / "site-packages"
    (site / "probe").mkdir(parents=True)
    record = "import gc, os\nwith open(os.environ['PROBE_LOG'], 'a') as f:\n"
    (site / "probe" / "__init__.py").write_text(
        f"{record}    f.write(f'{{os.getpid()}} probe {{gc.isenabled()}}\\n')\n"
        "def first_call():\n    import probe.lazy\n"
    )
    (site / "probe" / "lazy.py").write_text(
        f"{record}    f.write(f'{{os.getpid()}} lazy {{gc.isenabled()}}\\n')\n"
    )
    monkeypatch.syspath_prepend(str(site))
    probe_log = tmp_path / "probe.log"
    monkeypatch.setenv("PROBE_LOG", str(probe_log))
    address = warm.ensure([*PRELOAD, "probe"])
    assert address is not None
    server = str(_server_pid(address))
    code = "import gc, probe\nprint('collecting', gc.isenabled())\nprobe.first_call()"
    assert "collecting True" in _run_step(address, tmp_path, "first", code)
    deadline = time.monotonic() + 10  # the server learns probe.lazy once it reaps the step
    while f"{server} lazy" not in probe_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [line.split() for line in probe_log.read_text().splitlines()]
    assert [name for pid, name, _ in lines if pid == server] == ["probe", "lazy"]
    assert {on for pid, _, on in lines if pid == server} == {"False"}
    assert [(name, on) for pid, name, on in lines if pid != server] == [("lazy", "True")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_caller_waits_for_a_server_on_its_way_instead_of_starting_another(
    servers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert warm.ensure(PRELOAD, wait=False) is None  # started, not waited for
    (marker,) = (servers / "warm").glob("*.starting")
    spawned: list[list[str]] = []
    monkeypatch.setattr(warm, "_spawn", lambda address, preload: spawned.append(preload))
    address = warm.ensure(PRELOAD)
    assert address is not None and address.with_suffix(".starting") == marker
    assert spawned == []  # the first one answered
    _server_pid(address)
    assert not marker.exists()  # a bound server takes its marker away


def test_a_marker_of_a_dead_or_old_start_is_ignored(servers: Path) -> None:
    folder = servers / "warm"
    folder.mkdir(mode=0o700)
    marker = folder / "k.starting"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    marker.write_text(str(dead.pid))
    assert not warm._starting(folder / "k.sock")
    marker.write_text(str(os.getpid()))
    assert warm._starting(folder / "k.sock")
    old = time.time() - 2 * warm.CONNECT_TIMEOUT
    os.utime(marker, (old, old))
    assert not warm._starting(folder / "k.sock")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_the_next_run_of_a_config_starts_its_server_before_loading_it(
    servers: Path, tmp_path: Path
) -> None:
    """`kfg run kale.yaml` starts the server the last run of that file used before typer
    and the pipeline are loaded: even a run whose kale.yaml is now broken has started it."""
    result = make(
        tmp_path,
        [("code", "import json"), ("code", "print(json.dumps(1))")],
        [{"name": "one", "cells": [2]}],
        prelude=[1],
    )
    assert result.ok, messages(result)
    assert result.pipeline is not None and result.notebook is not None
    config = tmp_path / "kale.yaml"
    sockets = servers / "warm"

    ran = _kfg_run(config, "--no-cache")
    assert ran.returncode == 0, ran.stderr
    (address,) = sockets.glob("*.sock")
    (hint,) = sockets.glob("*.preload")
    noted = json.loads(hint.read_text())
    assert noted["preload"] == runner.preload_modules(result.pipeline, result.notebook)
    assert noted["config"] == os.path.realpath(config)
    assert warm.stop_servers(wait=20) == 1
    config.write_text(config.read_text() + "\n  {broken")
    assert _kfg_run(config, "--no-cache").returncode == 1
    # The guessed server may still be starting when the broken run has ended.
    deadline = time.monotonic() + 20
    while not address.with_suffix(".ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(sockets.glob("*.sock")) == [address]
    _server_pid(address)
    assert warm.stop_servers(wait=20) == 1
    hint.write_text('{"not": "a list of modules"}')  # no hint, and no harm
    assert _kfg_run(config, "--no-cache").returncode == 1
    assert not list(sockets.glob("*.sock")) and not list(sockets.glob("*.starting"))


def test_the_guess_takes_the_first_yaml_argument_of_run_and_tune_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfg import cli

    guessed: list[tuple[Path, str]] = []
    monkeypatch.setattr(warm, "prestart", lambda config, command: guessed.append((config, command)))
    cli._prestart(["run", "-p", "x=a.yaml", "--cache-dir", "c", "b.txt", "kale.yaml", "x.yml"])
    cli._prestart(["tune", "--trials", "4", "dir/p.kale.yml"])
    cli._prestart(["validate", "kale.yaml"])
    cli._prestart(["run"])
    cli._prestart([])
    assert guessed == [(Path("kale.yaml"), "run"), (Path("dir/p.kale.yml"), "tune")]

    def broken(config: Path, command: str) -> None:
        raise RuntimeError("a guess must never fail the command")

    monkeypatch.setattr(warm, "prestart", broken)
    cli._prestart(["run", "kale.yaml"])


def test_a_seed_the_user_chose_is_kept() -> None:
    assert warm.seeded({"PYTHONHASHSEED": "7"})["PYTHONHASHSEED"] == "7"
    assert warm.seeded({"PYTHONHASHSEED": ""})["PYTHONHASHSEED"] == warm.HASH_SEED
    assert warm.seeded({})["PYTHONHASHSEED"] == warm.HASH_SEED


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
@pytest.mark.parametrize("idle", ["30", "0"], ids=["warm-server", "forkserver"])
def test_a_set_a_step_returns_keeps_its_digest_in_the_next_servers_steps(
    servers: Path, tmp_path: Path, idle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set of strings iterates (and pickles) in an order that depends on the string hash
    seed: under a new server (or, without one, each run's own forkserver) a step returning
    one must still write the same bytes, or every step after it runs again."""
    monkeypatch.setenv(warm.IDLE_VARIABLE, idle)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    result = make(
        tmp_path,
        [
            ("code", "salt = 1"),
            ("code", "words = {f'word{i}' for i in range(200 + 0 * salt)}"),
            ("code", "count = len(words)"),
        ],
        [{"name": "vocabulary", "cells": [2]}, {"name": "size", "cells": [3]}],
        parameters={"cell": 1},
    )
    assert result.ok, messages(result)
    executed = []
    # The same set again, from a step that runs again because its parameter changed.
    for options in ([], ["-p", "salt=2"]):
        warm.stop_servers(wait=20)  # the second run starts another interpreter
        ran = _kfg_run(tmp_path / "kale.yaml", "--json", *options)
        assert ran.returncode == 0, ran.stderr
        steps = json.loads(ran.stdout)["steps"]
        executed.append([step["name"] for step in steps if step["status"] == "done"])
    assert executed == [["vocabulary", "size"], ["vocabulary"]]


def test_a_server_sweeps_away_what_nobody_will_use(tmp_path: Path) -> None:
    folder = tmp_path / "warm"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    config = tmp_path / "kale.yaml"
    config.write_text("")
    files = {
        # a server killed before it cleaned up: socket, pid file, empty log, marker
        "killed.sock": "",
        "killed.ready": str(dead.pid),
        "killed.log": "",
        "killed.starting": str(dead.pid),
        # a live server keeps all of its files
        "live.sock": "",
        "live.ready": str(os.getpid()),
        "live.log": "",
        # a log with something in it stays for its user
        "crashed.log": "Traceback ...",
        # hints: of a kale.yaml still there, of one gone, unreadable
        "kept.preload": json.dumps({"config": str(config), "preload": ["json"]}),
        "gone.preload": json.dumps({"config": str(tmp_path / "gone.yaml"), "preload": []}),
        "broken.preload": "{",
        # partial writes (of a pid file, a marker, a learned list), and a file kfg does
        # not know
        "k.ready.1234.partial": "1234",
        "k.starting.99.partial": "99",
        "k.learned.99.partial": "json",
        "notes.txt": "mine",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "recent.ready").write_text(str(dead.pid))  # too young to judge
    old = time.time() - 2 * warm.STALE
    for name in files:
        os.utime(folder / name, (old, old))
    for name, days in (("month-old.learned", 40), ("week-old.learned", 7)):
        (folder / name).write_text("json.tool\n")
        then = time.time() - days * 86400
        os.utime(folder / name, (then, then))
    warm._sweep(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "crashed.log",
        "kept.preload",
        "live.log",
        "live.ready",
        "live.sock",
        "notes.txt",
        "recent.ready",
        "week-old.learned",
    ]
    warm._recalled(folder / "week-old.learned")  # a server recalling it keeps it fresh
    assert time.time() - (folder / "week-old.learned").stat().st_mtime < warm.STALE


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm server forks")
def test_a_server_sweeps_when_it_first_has_nothing_to_do(servers: Path) -> None:
    folder = servers / "warm"
    folder.mkdir(mode=0o700)
    partial = folder / "left.ready.4321.partial"
    partial.write_text("4321")
    old = time.time() - 2 * warm.STALE
    os.utime(partial, (old, old))
    address = warm.ensure(PRELOAD)
    assert address is not None
    _until_gone(partial)
    assert not partial.exists() and address.exists()


def _one_answer(address: Path, answer: bytes) -> threading.Thread:
    """A stand-in server that answers one request with `answer`, written at once."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(address))
    listener.listen(1)

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, listener:
            connection.makefile("rb").readline()
            connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_step_that_ends_before_its_pid_is_read_keeps_its_exit_code(tmp_path: Path) -> None:
    # A quick step's server writes both lines before the caller reads the first; they
    # then arrive in one read, and the caller must not lose the second one.
    address, log = tmp_path / "s.sock", tmp_path / "step.log"
    server = _one_answer(address, b'{"pid": 4242}\n{"exit": 0}\n')
    step = warm.start_step(address, tmp_path / "spec.json", log)
    assert step is not None and step.pid == 4242
    assert step.wait() == 0
    server.join(5)
    assert not log.exists()


def test_a_step_whose_server_stops_answering_fails_and_says_why(tmp_path: Path) -> None:
    address, log = tmp_path / "s.sock", tmp_path / "step.log"
    log.write_text("7\n", encoding="utf-8")  # the last line a cell printed
    server = _one_answer(address, b'{"pid": 4242}\n')
    step = warm.start_step(address, tmp_path / "spec.json", log)
    assert step is not None
    assert step.wait() == 1
    server.join(5)
    assert runner._cause(log, 1) == "the warm server stopped answering before step 4242 ended"


def test_a_step_reports_the_modules_imported_after_it_started_then_its_status() -> None:
    # _report takes them by count from the end of sys.modules (which only appends), so a
    # step never touches the names the server holds (hundreds of shared pages), and ends
    # with the exit status, which the server passes on before the process is torn down.
    candidates = ["wave", "colorsys", "sndhdr", "mailcap", "nntplib", "xdrlib", "chunk"]
    fresh = [name for name in candidates if name not in sys.modules][:2]
    assert fresh, "every candidate is already imported"
    before = len(sys.modules)
    read, write = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # sndhdr, nntplib, ...
            for name in fresh:
                __import__(name)
        warm._report(before, write, 3)
        reported = os.read(read, 65536).decode().split("\n")
    finally:
        os.close(read)
        os.close(write)
        for name in fresh:
            sys.modules.pop(name, None)
    assert [name for name in reported if name in fresh] == fresh
    assert not set(reported) & {"os", "sys", "json"}
    assert reported[-2:] == ["exit 3", ""]


def _told(step: warm._Step) -> bool:
    """Whether the caller was told, read anew: mypy would keep `step.told` narrowed across
    the `receive` calls that change it."""
    return step.told


def test_the_caller_hears_a_step_end_from_its_report_not_its_teardown() -> None:
    ours, theirs = socket.socketpair()
    read, write = os.pipe()
    os.set_blocking(read, False)
    step = warm._Step(ours, read, "/nonexistent/spec.json")
    try:
        os.write(write, b"kfg_not_imported.part\n")
        assert not step.receive(set())  # the status is not in yet: nothing said
        assert not _told(step)
        os.write(write, b"exit 0\n")
        assert not step.receive(set())
        assert _told(step)  # told while the process may still be going away
        theirs.settimeout(5)
        assert json.loads(theirs.makefile("rb").readline()) == {"exit": 0}
        # Its cells could not be read: nothing it imported is learned.
        assert step.learn == []
        os.close(write)
        write = -1
        assert step.receive(set())  # and the report is complete
        step.tell(9)  # the process's own end, later: said once only
    finally:
        for descriptor in (read, write):
            if descriptor >= 0:
                os.close(descriptor)
        theirs.close()


def _spare_of(server: int, *not_these: int) -> int:
    """The one child of an idle server: its spare (Linux lists a process's children)."""
    listing = Path(f"/proc/{server}/task/{server}/children")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = [int(pid) for pid in listing.read_text().split()]
        if len(children) == 1 and children[0] not in not_these:
            return children[0]
        time.sleep(0.01)
    raise AssertionError(f"server {server} has no single spare: {listing.read_text()!r}")


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="needs Linux's list of a process's children",
)
def test_a_step_runs_in_a_spare_forked_before_it_was_asked_for(
    servers: Path, tmp_path: Path
) -> None:
    address = warm.ensure(PRELOAD)
    assert address is not None
    server = _server_pid(address)
    first = warm.start_step(address, *_step_spec(tmp_path, "first", "x = 1"))
    assert first is not None and first.wait() == 0
    spare = _spare_of(server, first.pid)
    assert "pid " + str(spare) in _run_step(address, tmp_path, "second", _PRINT_PID)
    # A spare that is gone (killed, say) is let go: the step gets a fork of its own.
    gone = _spare_of(server, first.pid, spare)
    os.kill(gone, signal.SIGKILL)
    _until_dead(gone)
    log = _run_step(address, tmp_path, "third", _PRINT_PID)
    assert "pid " in log and f"pid {gone}" not in log


_PRINT_PID = "import os\nprint('pid', os.getpid())"


def _until_dead(pid: int) -> None:
    """Until `pid` has exited (a zombie its parent has not reaped counts)."""
    stat_file = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if stat_file.read_text().rpartition(")")[2].split()[0] in ("Z", "X"):
                return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"{pid} is still running")
