"""A warm step server that outlives one `kfg run`, as a kernel outlives one cell.

Every step imports the prelude's modules (pandas, scikit-learn...: a second or more), and
the forkserver of one `kfg run` pays that once per run. In the loop a data scientist
lives in (change a parameter or a cell, run again, with most steps cached) that second
is most of the wait. The warm server imports the modules once and stays up while runs
come (it leaves after `KFG_WARM_IDLE` seconds without a step, 300 by default; `0` turns
it off): each step is forked from it, in the caller's directory, environment and umask,
into its own session writing its own log, exactly as the per-run forkserver would.

A server serves one set of preloaded modules for one interpreter, one kfg and one
environment, identified by a key over all of them, including the files of the
preloaded packages: `pip install` of a new pandas, an edited kfg or another virtualenv
starts another server, and the old one leaves when idle. Its socket lives in a
directory only this user can enter.

The server is single-threaded (a selector over its listening socket and one connection
per running step, children reaped with WNOHANG), so it never forks while another thread
holds a lock. It also learns: each step tells it, as it ends, which modules its libraries
imported for themselves (the parts of a library its first call loads), and the server
imports those that belong to installed packages it already holds, so later steps find them
imported. It keeps their names beside its socket (`KEY.learned`), and the next server of
its key imports them as it starts. Each run also notes which modules its kale.yaml's steps
preload (`DIGEST.preload`), so its next run starts the server before it has loaded the
pipeline (`prestart`).

Protocol, one JSON line each way: the client sends the step; the server
answers `{"pid": N}` once forked, then `{"exit": CODE}` when the step ends (`-N` when
signal N ended it, as `Popen.returncode` has it). The step
itself tells the server its status as its last act (`_report`), so the caller does not
wait for the step's copy of the server to be torn down; and the step usually runs in a
spare child forked while the server was idle (`_Spare`), so it does not wait for the fork
either. `ps` therefore shows one more process per server: the spare, which shares the
server's memory and holds none of its own.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import gc
import hashlib
import importlib.util
import itertools
import json
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from kfg import runtime
from kfg.engine.threads import environment

IDLE_VARIABLE = "KFG_WARM_IDLE"
DIRECTORY_VARIABLE = "KFG_WARM_DIR"  # where sockets go (default: $TMPDIR/kfg-warm-UID)
DEFAULT_IDLE = 300.0
# Variables a shell changes between commands without changing what a step computes.
VOLATILE = {"PWD", "OLDPWD", "_", "SHLVL", "COLUMNS", "LINES", "TERM_SESSION_ID"}
CONNECT_TIMEOUT = 2.0
START_TIMEOUT = 20.0  # how long a server being started may take to bind its socket
REPORT_MAX = 60_000  # bytes of module names a step reports to the server
LEARNED_MAX = 5_000  # module names a server keeps for the next one of its key
TICK = 0.5  # how often an idle server looks whether its socket is still there
PARTIAL = ".partial"  # the suffix of a file `_write_whole` has not renamed yet


def idle_seconds() -> float:
    raw = os.environ.get(IDLE_VARIABLE, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_IDLE
    except ValueError:
        return DEFAULT_IDLE


def _origin(name: str) -> list[Any]:
    """Where a preloaded module's top-level package is and when it last changed."""
    top = name.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return [top, None]
    origin = spec.origin if spec is not None else None
    if origin is None or not os.path.exists(origin):
        return [top, origin]
    folder = os.path.dirname(origin)
    return [top, origin, os.stat(origin).st_mtime_ns, os.stat(folder).st_mtime_ns]


def key(preload: list[str], env: dict[str, str]) -> str:
    kfg_files = [Path(__file__), Path(__file__).parent / "worker.py", runtime.SOURCE]
    identity = {
        "python": [sys.executable, sys.version, sys.path],
        "kfg": [[str(p), p.stat().st_mtime_ns] for p in kfg_files],
        "preload": preload,
        "origins": [_origin(name) for name in dict.fromkeys(preload)],
        "env": sorted((k, v) for k, v in env.items() if k not in VOLATILE),
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def socket_directory() -> Path | None:
    """The user's private directory for servers' sockets, or None when it is not private."""
    chosen = os.environ.get(DIRECTORY_VARIABLE)
    folder = Path(chosen) if chosen else Path(tempfile.gettempdir()) / f"kfg-warm-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o077
    return folder if info.st_uid == os.getuid() and private else None


def _connect(address: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(CONNECT_TIMEOUT)
    try:
        client.connect(str(address))
    except OSError:
        client.close()
        return None
    client.settimeout(None)
    return client


def ensure(preload: list[str], *, wait: bool = True, threads: int | None = None) -> Path | None:
    """The socket of a server for `preload` in this environment, started if none answers.

    Returns at once: a new server binds its socket first and imports afterwards, so a step
    sent meanwhile waits for the imports, not for the server to appear. With `wait=False`
    it does not even wait for the socket (a guess made before the caller knows its
    preload: see `prestart`), and returns None unless a server already answers.
    """
    if idle_seconds() <= 0 or not hasattr(os, "fork") or not hasattr(socket, "AF_UNIX"):
        return None
    folder = socket_directory()
    if folder is None:
        return None
    env = {**os.environ, **environment(threads)}
    address = folder / f"{key(preload, env)}.sock"
    if len(os.fsencode(address)) >= 100:  # sun_path holds 108 bytes on Linux, 104 on macOS
        return None
    if _answers(address):
        return address
    if not _starting(address):  # else a server of this key is on its way: wait for it
        _SPAWNED[address] = _spawn(address, preload, env)
    if not wait:
        return None
    begun = time.monotonic()
    while not _answers(address):  # the socket is bound before any import
        waited = time.monotonic() - begun
        # A server binds within milliseconds of starting, unless the machine is busy
        # starting interpreters: one this process started is worth waiting for while it
        # lives, since the alternative (this run's own forkserver) imports the prelude
        # once more. (Another process's server may have died unseen: its zombie stays.)
        ours = _SPAWNED.get(address)
        alive = ours is not None and ours.poll() is None and waited < START_TIMEOUT
        if waited >= CONNECT_TIMEOUT and not alive:
            return None
        time.sleep(0.005)
    return address


_SPAWNED: dict[Path, subprocess.Popen[bytes]] = {}  # the last server this process started


def _answers(address: Path) -> bool:
    """Whether a server listens at `address` and has published its pid (stop_servers
    reads it), which it does just after it binds."""
    probe = _connect(address)
    if probe is None:
        return False
    probe.close()
    return _pid_at(address) is not None


def _spawn(address: Path, preload: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = address.with_suffix(".log")
    with log.open("ab") as handle:
        os.utime(log)  # a fresh start's log, which `_sweep` leaves alone
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kfg.engine.warm",
                str(address),
                json.dumps({"preload": preload, "path": sys.path}),
                str(idle_seconds()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=seeded(env),
        )
    # Another caller that finds it waits for this server instead of starting a second one
    # whose imports would compete with it.
    with contextlib.suppress(OSError):
        _write_whole(address.with_suffix(".starting"), str(server.pid))
    return server


def _write_whole(path: Path, text: str) -> None:
    """Write `path` so a reader sees it whole or not at all: through a partial file of this
    process, renamed over it (`_sweep` removes partials a killed writer left)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}{PARTIAL}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


HASH_SEED = "0"


def seeded(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for an interpreter whose steps iterate sets in the same order run after run.

    A string's hash, and so the order of a set of strings, changes with every interpreter
    unless PYTHONHASHSEED fixes it. A step that returns such a set (a vocabulary, stop
    words, `set(df.columns)`), or a model holding one, would pickle it in another order
    under the next server, and the value's new digest would run every step after it again.
    A seed the user chose is kept.
    """
    return {**env, "PYTHONHASHSEED": env.get("PYTHONHASHSEED") or HASH_SEED}


def _starting(address: Path) -> bool:
    """Whether a server for `address` was started moments ago and has not bound it yet."""
    marker = address.with_suffix(".starting")
    try:
        age = time.time() - marker.stat().st_mtime
    except OSError:
        return False
    pid = _pid_in(marker)
    return pid is not None and 0 <= age < CONNECT_TIMEOUT and _alive(pid)


def remember_preload(
    config: Path, preload: list[str], threads: int | None = None, command: str = "run"
) -> None:
    """Note which modules `config`'s steps preload, and with which thread cap, for
    `prestart` on the next `kfg COMMAND` of it (a tune's parallel trials may cap threads
    where a run does not, so each command has its own note)."""
    folder = socket_directory()
    if folder is None or idle_seconds() <= 0:
        return
    hint = _hint(folder, config, command)
    noted = {"config": os.path.realpath(config), "preload": preload, "threads": threads}
    text = json.dumps(noted)
    with contextlib.suppress(OSError):
        if hint.read_text(encoding="utf-8") == text:
            return
    with contextlib.suppress(OSError):
        _write_whole(hint, text)


def prestart(config: Path, command: str = "run") -> None:
    """Start the server `config`'s last run used, before this run has loaded the pipeline.

    A `kfg run` spends about 0.3 s importing its CLI and reading kale.yaml and the notebook
    before it knows which modules its steps preload; the server's imports (a second or
    more) can run meanwhile. The list is a guess from the last run of the same file: when
    the prelude changed since, the run starts the right server as usual, and the guessed
    one leaves when idle, having cost only CPU.
    """
    folder = socket_directory()
    if folder is None:
        return
    noted = _noted(_hint(folder, config, command))
    if noted is not None:
        with contextlib.suppress(OSError):
            ensure(noted[1], wait=False, threads=noted[2])


def _noted(hint: Path) -> tuple[str, list[str], int | None] | None:
    """The kale.yaml, preload list and thread cap a hint records, or None when it is no
    hint."""
    try:
        noted = json.loads(hint.read_text(encoding="utf-8"))
        config, preload = noted["config"], noted["preload"]
        threads = noted.get("threads")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(config, str) or not isinstance(preload, list):
        return None
    if not all(isinstance(name, str) for name in preload):
        return None
    if threads is not None and (type(threads) is not int or threads < 1):
        return None
    return config, preload, threads


def _hint(folder: Path, config: Path, command: str) -> Path:
    where = os.fsencode(os.path.realpath(config)) + b"\0" + command.encode()
    return folder / f"{hashlib.sha256(where).hexdigest()[:20]}.preload"


class WarmStep:
    """A step forked by the warm server, with the interface of a Popen."""

    def __init__(self, connection: socket.socket, reader: BinaryIO, pid: int, log: Path) -> None:
        # The reader that read the pid line must read the exit line too: a buffered
        # reader may already hold it when the step was quick, and a second reader on the
        # same socket would then see only the end of the stream.
        self.connection = connection
        self.reader = reader
        self.pid = pid
        self.log = log

    def wait(self) -> int:
        try:
            line = self.reader.readline()
            return int(json.loads(line)["exit"])
        except (OSError, ValueError, KeyError, TypeError):
            # Without its exit line the step's outcome is unknown: say so where the
            # engine looks for a failed step's cause, rather than let the log's last
            # line (often a cell's output) stand for it.
            with contextlib.suppress(OSError), self.log.open("a", encoding="utf-8") as log:
                cause = f"the warm server stopped answering before step {self.pid} ended"
                log.write(f"\nkfg: {cause}\n")
            return 1
        finally:
            self.reader.close()
            self.connection.close()


def start_step(address: Path, spec: Path, log: Path, threads: int | None = None) -> WarmStep | None:
    """Fork a step from the server at `address`; None when it does not answer."""
    connection = _connect(address)
    if connection is None:
        return None
    request = {
        "spec": str(spec),
        "log": str(log),
        "cwd": os.getcwd(),
        "env": {**os.environ, **environment(threads), "PYTHONUNBUFFERED": "1"},
        "umask": _umask(),
        "path": sys.path,
    }
    reader = connection.makefile("rb")
    try:
        connection.sendall(json.dumps(request).encode("utf-8") + b"\n")
        pid = int(json.loads(reader.readline())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        reader.close()
        connection.close()
        return None
    return WarmStep(connection, reader, pid, log)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


# --- the server ---------------------------------------------------------------------------


class _Step:
    """A step the server forked: the caller's connection, the pipe the step reports on
    (`_report`), its spec, and what the server has heard of it."""

    def __init__(self, connection: socket.socket, report: int, spec: str) -> None:
        self.connection = connection
        self.report = report
        self.spec = spec
        self.received = bytearray()
        self.told = False  # the caller knows how the step ended
        self.learn: list[str] = []  # what it imported that the server may learn

    def receive(self, refused: set[str]) -> bool:
        """Read what the step reported so far, and tell the caller once its exit status
        is in; whether the report is complete (the step closed its end)."""
        try:
            while chunk := os.read(self.report, 65536):
                self.received += chunk
        except BlockingIOError:
            ended = False
        except OSError:
            ended = True
        else:
            ended = True
        lines = self.received.decode("utf-8", "replace").split("\n")
        if not self.told and len(lines) > 1 and lines[-2].startswith(_EXIT):
            try:
                code = int(lines[-2][len(_EXIT) :])
            except ValueError:
                return ended
            self.learn = [name for name in lines[:-2] if name and _unknown(name, refused)]
            if self.learn:  # rare once the server has learned: the spec is read only then,
                own = _own_imports(self.spec)  # before the caller hears (it moves the file)
                self.learn = [] if own is None else [n for n in self.learn if n not in own]
            self.tell(code)
        return ended

    def tell(self, code: int) -> None:
        if not self.told:
            with contextlib.suppress(OSError):
                self.connection.sendall(json.dumps({"exit": code}).encode("utf-8") + b"\n")
            self.connection.close()
            self.told = True


# The steps running, by pid.
Children = dict[int, _Step]


def _child(request: dict[str, Any], imports: int) -> None:
    """In the forked child: become the caller's step, then run it (never returns)."""
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        sys.path[:] = request["path"]
        from kfg.engine.worker import run_in_child

        before = len(sys.modules)
        # exits the process, after telling the server what the step imported
        run_in_child(request["spec"], request["log"], lambda code: _report(before, imports, code))
    finally:
        os._exit(1)


def _report(before: int, descriptor: int, code: int) -> None:
    """Tell the server the modules the step imported, one name per line in the order it
    did, then its exit status (`exit CODE`), in one write.

    The status comes this way rather than from the process's end because a process forked
    from a server of a few hundred MB takes about 10 ms more to be torn down, and the
    caller need not wait for that: its step's files are all written by now.

    The names are taken by count from the end of `sys.modules`, which only appends: a set
    of its names made in the step would touch every one of the server's ~2,000 name
    strings, copying about 900 shared pages (3-4 ms) in each step. A step that removed
    modules reports fewer, which only teaches the server less. The server sorts out what
    its cells imported themselves (`_own_imports`), only for names it would otherwise
    learn.
    """
    added = len(sys.modules) - before
    fresh = list(itertools.islice(reversed(sys.modules), max(added, 0)))[::-1]
    names = "".join(f"{name}\n" for name in fresh).encode("utf-8", "replace")
    if len(names) > REPORT_MAX:  # a pipe holds 64 KiB: the step never waits for the server
        names = names[:REPORT_MAX].rpartition(b"\n")[0] + b"\n"
    os.set_blocking(descriptor, False)
    os.write(descriptor, names + f"{_EXIT}{code}\n".encode())


_EXIT = "exit "  # the last line of a step's report; no module name holds a space


def _own_imports(spec: str) -> set[str] | None:
    """What the step's cells import themselves, which the server never learns (None when
    the spec cannot be read: then it learns nothing from the step).

    Such an import may change other modules (`import
    sklearn.experimental.enable_iterative_imputer` adds a class to `sklearn.impute`), and a
    step that relied on another step's import would then pass here and fail in its pod.
    """
    from kfg.pysource.imports import named_modules
    from kfg.pysource.source import parse_cell

    named: set[str] = set()
    try:
        job = json.loads(Path(spec).read_text(encoding="utf-8"))
        for _, source in [*job["prelude"], *job["cells"]]:
            tree = parse_cell(source)
            if isinstance(tree, ast.Module):
                named |= named_modules(tree)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return named


def _learn(names: list[str], refused: set[str]) -> tuple[list[str], bool]:
    """Import what a step imported from a package this server already holds: the names
    imported, and False when that started a thread (the server then forks no more: a child
    of a process with other threads can inherit a lock one of them held).

    A step's first call into a library often imports more of it: scikit-learn's first `fit`
    on a DataFrame imports narwhals' pandas layer (20 modules, 20-30 ms here), and every
    step forked from a server without it paid that again. Only submodules of packages the server has
    already imported are learned, so no package the prelude did not bring in (a module of
    the project itself, one a single step imports) is ever held here.
    """
    threads = threading.active_count()
    imported: list[str] = []
    for name in names:
        if not _unknown(name, refused):
            continue
        if name.partition(".")[0] not in sys.modules or not _installed(name):
            refused.add(name)
            continue
        try:
            importlib.import_module(name)
        except (Exception, SystemExit):  # a name that is no module, or a broken one
            refused.add(name)
        else:
            imported.append(name)
    return imported, threading.active_count() == threads


def _recalled(path: Path) -> list[str]:
    """What earlier servers for this key learned (see `_remember`)."""
    try:
        names = path.read_text(encoding="utf-8").split()[:LEARNED_MAX]
        os.utime(path)  # in use: `_sweep` keeps it
    except (OSError, ValueError):
        return []
    return names


def _remember(path: Path, names: list[str]) -> None:
    """Keep what this server learned beside its socket, for the next server of its key: it
    imports those modules as it starts (the same cost as in one step, paid once), so a
    run after an idle server left does not pay for them in each of its first steps."""
    with contextlib.suppress(OSError):
        _write_whole(path, "\n".join(names[:LEARNED_MAX]) + "\n")


def _installed(name: str) -> bool:
    """Whether `name` is a module of the standard library or an installed package: what
    changes only with an install, which the server's key notices. A project's own package
    (on the path from its folder, or installed editable) is edited in place, and a step
    must see the edit."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    if not spec.has_location or spec.origin is None:
        return False
    origin = os.path.realpath(spec.origin)
    return any(origin.startswith(root + os.sep) for root in _install_roots())


@functools.cache
def _install_roots() -> list[str]:
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    roots = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    with contextlib.suppress(AttributeError):  # virtualenv's old site module lacks them
        roots += [*site.getsitepackages(), site.getusersitepackages()]
    return sorted({os.path.realpath(root) for root in roots})


STALE = 600.0  # seconds: far longer than any server takes to start
FORGOTTEN = 30 * 86400.0  # seconds: what no server recalled for a month is dropped


def _sweep(folder: Path) -> None:
    """Remove what servers, runs and interruptions left in `folder` and nobody will use.

    A server killed before it could clean up leaves its socket, pid file and empty log; an
    interrupted write leaves a partial file; every kale.yaml run here leaves a preload
    hint, and every key what it learned. A server sweeps once, the first time a tick
    passes with nothing to do, so no step waits for it; it keeps anything a live server
    or a recent start may still own.
    """
    now = time.time()
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if _unused(path, now - path.lstat().st_mtime):
                path.unlink()


def _unused(path: Path, age: float) -> bool:
    if age < STALE:
        return False
    suffix = path.suffix
    if suffix == ".preload":  # its kale.yaml is gone
        noted = _noted(path)
        return noted is None or not os.path.exists(noted[0])
    if suffix == ".learned":  # no server of its key started for a month
        return age > FORGOTTEN
    if suffix in (".sock", ".ready", ".log", ".starting"):
        server = _pid_in(path.with_suffix(".ready"))
        if server is not None and _alive(server):
            return False
        if suffix == ".log":
            return path.stat().st_size == 0  # a server's last words stay for its user
        if suffix == ".sock":
            live = _connect(path)
            if live is not None:
                live.close()
                return False
        return True
    return suffix == PARTIAL  # what a killed `_write_whole` left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: the pid was reused, no server of ours
        return False
    return True


def _bind(address: Path) -> socket.socket | None:
    """Listen at `address`; None when a live server already does."""
    for _ in range(2):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(address))
        except OSError:
            listener.close()
            live = _connect(address)
            if live is not None:
                live.close()
                return None  # another server for the same key won the race
            with contextlib.suppress(FileNotFoundError):
                address.unlink()  # left by a server that was killed
            continue
        listener.listen(64)
        return listener
    return None


def _inode(address: Path) -> int | None:
    try:
        return address.stat().st_ino
    except OSError:
        return None


def serve(address: Path, preload: list[str], path: list[str], idle: float) -> None:
    listener = _bind(address)
    if listener is not None:
        _write_whole(address.with_suffix(".ready"), str(os.getpid()))  # the pid, by the socket
    marker = address.with_suffix(".starting")
    if _pid_in(marker) == os.getpid():  # bound, or another server is: no longer starting
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    if listener is None:
        return
    ours = _inode(address)
    sys.path[:] = path  # the caller's, so the preloaded modules are the ones it would import
    with _importing():
        for name in preload:
            with contextlib.suppress(Exception):  # the step reports a broken import itself
                __import__(name)
    os.chdir("/")  # pin no directory while idle; each step moves to its caller's
    refused: set[str] = set()
    memory = address.with_suffix(".learned")
    with _importing():
        learned, accepting = _learn(_recalled(memory), refused)
    # A step's end wakes the selector at once (SIGCHLD writes to this pipe), so the caller
    # hears of it within microseconds rather than at the next tick.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listener")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    children: Children = {}
    spare: _Spare | None = None  # forked ahead of the next request (see _Spare)
    spent: list[int] = []  # spares let go, until reaped
    swept = False  # the folder, once, at the first quiet moment (see _sweep)
    last = time.monotonic()
    try:
        if not accepting:  # what an earlier server learned starts a thread now
            _retire(address, ours, selector, listener)
            with contextlib.suppress(FileNotFoundError):
                memory.unlink()  # so the next server starts without it
        while True:
            if accepting and _inode(address) != ours:  # removed (stop_servers) or replaced
                accepting = False
                selector.unregister(listener)
            if not children and (not accepting or time.monotonic() - last >= idle):
                break
            events = selector.select(timeout=TICK)
            for key, _ in events:
                if key.data == "listener":
                    connection, _ = listener.accept()
                    spare = _start(connection, listener, children, selector, spare, spent)
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_read, 4096)
                elif children[key.data].receive(refused):  # the step's report is complete
                    selector.unregister(key.fd)
            if not events and not swept:
                _sweep(address.parent)
                swept = True
            imported = _reap(children, refused, selector)
            spent = [pid for pid in spent if not _ended(pid)]
            if imported and accepting:
                with _importing():
                    fresh, accepting = _learn(imported, refused)
                if not accepting:  # the next run starts a server without that thread
                    _retire(address, ours, selector, listener)
                elif fresh:
                    learned += fresh
                    _remember(memory, learned)
                if spare is not None and (fresh or not accepting):  # it lacks them
                    spare.discard()
                    spent.append(spare.pid)
                    spare = None
            if spare is None and accepting:
                spare = _Spare.fork(listener)
            if children:
                last = time.monotonic()
    finally:
        if spare is not None:
            spare.discard()
        if _inode(address) == ours:  # never another server's socket
            with contextlib.suppress(FileNotFoundError):
                address.unlink()
        if _pid_at(address) == os.getpid():  # nor its pid file (stop_servers took the socket)
            with contextlib.suppress(FileNotFoundError):
                address.with_suffix(".ready").unlink()
        log = address.with_suffix(".log")
        with contextlib.suppress(OSError):
            if log.stat().st_size == 0:  # nothing went wrong: leave no trace
                log.unlink()
        listener.close()


def _retire(
    address: Path, ours: int | None, selector: selectors.BaseSelector, listener: socket.socket
) -> None:
    """Take no more steps; a new server answers at `address` once the socket is gone."""
    selector.unregister(listener)
    if _inode(address) == ours:
        with contextlib.suppress(FileNotFoundError):
            address.unlink()


def _read_request(connection: socket.socket) -> dict[str, Any] | None:
    connection.settimeout(CONNECT_TIMEOUT)
    try:
        reader = connection.makefile("rb")
        request = json.loads(reader.readline())
        reader.close()
    except (OSError, ValueError):
        return None
    return request if isinstance(request, dict) and "spec" in request else None


def _forked(listener: socket.socket, connection: socket.socket | None = None) -> None:
    """In a child just forked from the server: drop what is the server's alone."""
    signal.set_wakeup_fd(-1)  # the server's pipe and handler are not the step's
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    listener.close()
    if connection is not None:
        connection.close()


class _Spare:
    """A child forked before the request it will serve, waiting for it on a pipe.

    Forking the server (a few hundred MB of mappings to share) takes about 9 ms, which a
    step's caller waited for; with a spare forked while the server was idle, the request
    is handed over at once and the next spare forked after the caller has its pid. A spare
    holds no memory of its own until it runs a step, and leaves when its pipe closes
    without a request (the server discarded it, or ended).
    """

    def __init__(self, pid: int, requests: int, report: int) -> None:
        self.pid = pid
        self.requests = requests  # the server writes the request here, then closes it
        self.report = report  # the step's `_report`, read by the server

    @staticmethod
    def fork(listener: socket.socket) -> _Spare | None:
        requests_read, requests_write = os.pipe()
        report_read, report_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for descriptor in (requests_read, requests_write, report_read, report_write):
                os.close(descriptor)
            return None
        if pid == 0:
            try:  # whatever happens, this child never goes on as a second server
                _forked(listener)
                os.close(requests_write)
                os.close(report_read)
                request = _awaited(requests_read)
                if request is None:
                    os._exit(0)
                _child(request, report_write)
            finally:
                os._exit(1)
        os.close(requests_read)
        os.close(report_write)
        return _Spare(pid, requests_write, report_read)

    def hand(self, request: dict[str, Any]) -> bool:
        """Give the spare its request; False when it is gone (it is then let go)."""
        data = memoryview(json.dumps(request).encode("utf-8"))
        try:
            while data:
                data = data[os.write(self.requests, data) :]
        except OSError:
            self.discard()
            return False
        os.close(self.requests)
        return True

    def discard(self) -> None:
        """Let the spare go without a request (its pid still wants reaping)."""
        for descriptor in (self.requests, self.report):
            with contextlib.suppress(OSError):
                os.close(descriptor)


def _awaited(descriptor: int) -> dict[str, Any] | None:
    """In a spare: the request the server hands over, or None when it closes the pipe."""
    try:
        with os.fdopen(descriptor, "rb") as pipe:
            data = pipe.read()
        request = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return request if isinstance(request, dict) else None


def _start(
    connection: socket.socket,
    listener: socket.socket,
    children: Children,
    selector: selectors.BaseSelector,
    spare: _Spare | None,
    spent: list[int],
) -> _Spare | None:
    """Start the step the caller at `connection` asks for, in `spare` when there is one;
    the spare left afterwards (None once it took the step, or was found gone: then its
    pid joins `spent`, to be reaped)."""
    request = _read_request(connection)
    if request is None:
        connection.close()
        return spare
    if spare is not None and spare.hand(request):
        pid, report = spare.pid, spare.report
    else:
        if spare is not None:
            spent.append(spare.pid)
        report, report_write = os.pipe()  # what the step imported, told at its end
        try:
            pid = os.fork()
        except OSError:
            for descriptor in (report, report_write):
                os.close(descriptor)
            connection.close()
            return None
        if pid == 0:
            try:  # whatever happens, this child never goes on as a second server
                _forked(listener, connection)
                os.close(report)
                _child(request, report_write)
            finally:
                os._exit(1)
        os.close(report_write)
    os.set_blocking(report, False)
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps({"pid": pid}).encode("utf-8") + b"\n")
    children[pid] = _Step(connection, report, request["spec"])
    selector.register(report, selectors.EVENT_READ, pid)
    return None


def _reap(children: Children, refused: set[str], selector: selectors.BaseSelector) -> list[str]:
    """Forget the steps whose processes ended, telling the callers not yet told how (a
    step killed before it reported); the modules those steps imported that this server
    may learn."""
    imported: list[str] = []
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 1 << 8
        if done == 0:
            continue
        step = children.pop(pid)
        step.receive(refused)  # what it wrote just before it ended
        step.tell(os.waitstatus_to_exitcode(status))  # -N: killed by signal N, as Popen
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(step.report)
        os.close(step.report)
        imported += step.learn
    return imported


def _ended(pid: int) -> bool:
    """Reap a child that is no step (a spare let go); whether it is gone."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _unknown(name: str, refused: set[str]) -> bool:
    """A module name the server neither holds nor refused (nor a private one)."""
    return name not in sys.modules and name not in refused and not name.startswith("_")


def _pid_at(address: Path) -> int | None:
    """The pid the server at `address` wrote beside its socket, if it did."""
    return _pid_in(address.with_suffix(".ready"))


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _importing() -> Iterator[None]:
    """Import with the collector off, then keep what was imported out of the steps' collections.

    Importing pandas and scikit-learn allocates hundreds of thousands of objects, and the
    collections those allocations trigger find next to nothing to free (about 1,200
    unreachable objects after the wine prelude) while taking a tenth or more of the import:
    the prelude's import took 1.61 s against 1.76 s (medians of 16, alternating) with the
    collector off, which is the advice of `gc.freeze`'s documentation for a parent that
    forks workers. The collector is on again afterwards, in the server and in every step it
    forks, so a step collects its own garbage as it would in its pod.

    Then the server's objects are frozen. A forked step shares the server's memory until
    it writes to it, and a full collection writes to every object it visits: in a step
    forked from a server holding pandas and scikit-learn, one `gc.collect()` took about
    110 ms and copied the pages it touched, against about 10 ms once the server's objects
    are frozen. Nothing the server imported is ever freed anyway, and freezing costs
    nothing (it moves the collector's lists whole), so no collection first delays the
    first step.
    """
    enabled = gc.isenabled()
    modules = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) != modules:  # else nothing new to keep, only the loop's garbage
            gc.freeze()
        if enabled:
            gc.enable()


def stop_servers(wait: float = 0.0) -> int:
    """Ask every warm server of this user to leave (each notices its socket is gone within
    a tick and exits once its running steps end), waiting up to `wait` seconds until they
    have; how many were asked."""
    folder = socket_directory()
    if folder is None:
        return 0
    asked: list[tuple[Path, int | None]] = []
    for address in folder.glob("*.sock"):
        pid = _pid_at(address)
        with contextlib.suppress(FileNotFoundError):
            address.unlink()
            asked.append((address, pid))
    deadline = time.monotonic() + wait
    for address, pid in asked:
        # A server takes its pid file away last, on its way out (its parent may not have
        # reaped it yet, so the pid itself can outlive it).
        while pid is not None and _pid_at(address) == pid and time.monotonic() < deadline:
            time.sleep(0.01)
    return len(asked)


if __name__ == "__main__":
    _setup = json.loads(sys.argv[2])
    serve(Path(sys.argv[1]), _setup["preload"], _setup["path"], float(sys.argv[3]))
