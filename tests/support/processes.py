"""Child processes and FUSE mounts that never outlive the test run.

Every process the harness starts goes through `spawn()`: it runs in its own
session (so a signal to it reaches its whole group), dies with SIGKILL if the
test process dies (`setpriv --pdeathsig`), and is remembered. `cleanup_all()`
lazily unmounts every FUSE mount under the test root and kills every
remembered process that is still alive; it runs at pytest session end, at
interpreter exit and on SIGTERM/SIGHUP. The test root's name carries our PID, so
a later run also unmounts what a SIGKILLed run left behind (and only that).

Also here: `run_ocifs()` (one `oci-fs` command with a timeout) and `Mount`
(an `oci-fs mount` that is unmounted and waited for on exit).
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

_ROOT_PREFIX = "ocifs-tests-"
_lock = threading.Lock()
_children: list[subprocess.Popen] = []  # guarded by _lock
_foreign_pids: dict[int, str] = {}  # pid -> cmdline, e.g. daemonized oci-fs; guarded by _lock
_test_root: Path | None = None
_SETPRIV = shutil.which("setpriv")


# --------------------------------------------------------------------------- test root


def test_root() -> Path:
    """The per-run temporary directory (created on first use, removed by cleanup_all)."""
    global _test_root
    with _lock:
        if _test_root is None:
            _reap_stale_roots()
            _test_root = Path(tempfile.mkdtemp(prefix=f"{_ROOT_PREFIX}{os.getpid()}-"))
            _install_guards()
        return _test_root


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_stale_roots() -> None:
    """Unmounts and removes test roots of earlier runs whose process is gone."""
    tmp = Path(tempfile.gettempdir())
    for root in tmp.glob(f"{_ROOT_PREFIX}*-*"):
        m = re.match(rf"{_ROOT_PREFIX}(\d+)-", root.name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        for mp in mounts_under(root):
            unmount(mp, lazy=True)
        for pid in _pids_mentioning(str(root)):  # e.g. a daemonized oci-fs, a registry
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        pid = int(d.rsplit("/", 1)[1])
        cmd = _cmdline(pid)
        if pid != os.getpid() and cmd and text in cmd:
            pids.append(pid)
    return pids


# --------------------------------------------------------------------------- mounts


def _unescape_mountinfo(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts_under(root: Path | str) -> list[str]:
    """Mount points at or below `root` (deepest first), from /proc/self/mountinfo."""
    root = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mp = _unescape_mountinfo(line.split()[4])
            if mp == root or mp.startswith(root + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def is_mounted(path: Path | str) -> bool:
    path = os.path.realpath(path)
    return path in mounts_under(path)


def unmount(path: Path | str, lazy: bool = False, timeout: float = 10) -> bool:
    """`fusermount3 -u [-z] PATH`; True if PATH is no longer a mount point."""
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [str(path)]
    try:
        subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pass
    if is_mounted(path) and not lazy:
        return unmount(path, lazy=True, timeout=timeout)
    return not is_mounted(path)


# --------------------------------------------------------------------------- processes


def spawn(args: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Popen in a new session, killed if we die, remembered for cleanup_all()."""
    test_root()  # installs the guards
    argv = [str(a) for a in args]
    if _SETPRIV:
        argv = [_SETPRIV, "--pdeathsig", "KILL", "--"] + argv
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen(argv, start_new_session=True, **popen_kwargs)
    with _lock:
        _children.append(proc)
    return proc


def sigstop(pid: int, timeout: float = 30) -> None:
    """SIGSTOP to `pid`, returning once every thread of it is stopped.

    kill(2) returns before the process stops: SIGSTOP wakes one thread, and
    the others stop only once that one has run and started the group stop.
    On a busy machine that takes long enough for another thread to answer a
    request meant to find the process stopped (a FUSE statfs, a registry
    range request: two CI failures)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
            try:
                with open(stat) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass  # a thread that just exited
        if states and all(s in ("T", "t") for s in states):
            return
        if not os.path.exists(f"/proc/{pid}"):
            raise AssertionError(f"process {pid} is gone; it cannot be stopped")
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not stop within {timeout} s: thread states {states}")
        time.sleep(0.005)


def stop(proc: subprocess.Popen, timeout: float = 5) -> int | None:
    """SIGTERM to the process group, then SIGKILL after `timeout`; returns the exit code."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    else:
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers of its group, if any
    with _lock:
        if proc in _children:
            _children.remove(proc)
    return proc.returncode


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None


def adopt(pid: int) -> None:
    """Remembers a process that is not our child (e.g. a daemonized oci-fs)."""
    cmd = _cmdline(pid)
    if cmd is not None:
        with _lock:
            _foreign_pids[pid] = cmd


def forget(pid: int) -> None:
    with _lock:
        _foreign_pids.pop(pid, None)


def find_processes(exe: str, arg: str) -> list[int]:
    """PIDs whose argv[0] or /proc/PID/exe is `exe` and whose argv contains `arg`."""
    exe_real = os.path.realpath(exe)
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        pid = int(d.rsplit("/", 1)[1])
        cmd = _cmdline(pid)
        if not cmd:
            continue
        argv = cmd.rstrip("\0").split("\0")
        try:
            pexe = os.readlink(f"{d}/exe")
        except OSError:
            pexe = ""
        if (pexe == exe_real or os.path.realpath(argv[0]) == exe_real) and arg in argv:
            pids.append(pid)
    return pids


def wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid) or _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# --------------------------------------------------------------------------- the guard


def cleanup_all() -> None:
    """Unmounts everything under the test root, kills every remembered process,
    removes the test root. Safe to call more than once and from a signal handler."""
    global _test_root
    root = _test_root
    if root is not None:
        for mp in mounts_under(root):
            unmount(mp, lazy=True)
    with _lock:
        children = list(_children)
        foreign = dict(_foreign_pids)
    for proc in children:
        try:
            stop(proc, timeout=3)
        except Exception:  # pragma: no cover - best effort
            pass
    for pid, cmd in foreign.items():
        if _cmdline(pid) == cmd:  # still the same process, not a reused PID
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        forget(pid)
    if root is not None:
        for mp in mounts_under(root):  # a daemon killed above may have left one
            unmount(mp, lazy=True)
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)
            _test_root = None


_guards_installed = False


def _on_signal(signum, _frame):
    cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_guards() -> None:
    global _guards_installed
    if _guards_installed:
        return
    _guards_installed = True
    atexit.register(cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


# --------------------------------------------------------------------------- oci-fs


class OcifsNotBuilt(RuntimeError):
    """Raised by ocifs_bin() when no oci-fs binary can be found."""


def ocifs_bin() -> str:
    """$OCIFS_BIN, else $OCIFS_BUILD_DIR/src/cli/oci-fs, else <source>/build/src/cli/oci-fs."""
    env = os.environ.get("OCIFS_BIN")
    if env:
        return env
    src = os.environ.get("OCIFS_SOURCE_DIR", str(Path(__file__).resolve().parents[2]))
    candidates = []
    if os.environ.get("OCIFS_BUILD_DIR"):
        candidates.append(Path(os.environ["OCIFS_BUILD_DIR"]) / "src/cli/oci-fs")
    candidates.append(Path(src) / "build/src/cli/oci-fs")
    for c in candidates:
        if os.access(c, os.X_OK):
            return str(c)
    raise OcifsNotBuilt("oci-fs binary not found: set OCIFS_BIN (tried %s)"
                        % ", ".join(map(str, candidates)))


def isolated_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for oci-fs: no auth file, docker config or cache of the host.

    HOME, XDG_RUNTIME_DIR, XDG_CACHE_HOME and OCIFS_RUN_DIR point into the test root;
    REGISTRY_AUTH_FILE and DOCKER_CONFIG are removed. `extra` overrides.
    """
    root = test_root()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "OCIFS_BIN")}
    for name, sub in (("HOME", "home"), ("XDG_RUNTIME_DIR", "run"), ("XDG_CACHE_HOME", "cache"),
                      ("OCIFS_RUN_DIR", "mounts")):  # kept mounts' state files (docs/mount-state-format.md)
        d = root / "env" / sub
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(d)
    env.update(extra or {})
    return env


@dataclass
class Result:
    """Outcome of one oci-fs run. `stdout` is bytes (cat writes binary)."""

    args: list[str]
    returncode: int
    stdout: bytes
    stderr: str
    seconds: float

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def output(self) -> str:
        """stdout and stderr together, for 'is this string anywhere' checks."""
        return self.text + "\n" + self.stderr

    def describe(self) -> str:
        out = self.text if len(self.stdout) < 4000 else self.text[:4000] + "..."
        return (f"$ oci-fs {' '.join(self.args)}\nexit {self.returncode} after {self.seconds:.1f}s\n"
                f"--- stdout\n{out}\n--- stderr\n{self.stderr}")


class OcifsError(AssertionError):
    def __init__(self, result: Result, why: str):
        super().__init__(f"{why}\n{result.describe()}")
        self.result = result


def run_ocifs(*args, env: Mapping[str, str] | None = None, check: bool = True,
              timeout: float = 60, input: bytes | None = None,
              kill_group: bool = True) -> Result:
    """Runs `$OCIFS_BIN ARGS...` in an isolated environment (see isolated_env).

    check=True raises OcifsError unless the exit code is 0; a run longer than
    `timeout` seconds is killed (with its process group) and raises OcifsError.
    kill_group=True also kills whatever the command left in its process group
    (a daemon that setsid()s, like a FUSE mount, is not in it).
    """
    argv = [str(a) for a in args]
    proc = spawn([ocifs_bin(), *argv], env=isolated_env(env), stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    start = time.monotonic()
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    finally:
        if kill_group:
            stop(proc)
        else:
            proc.wait()
            with _lock:
                if proc in _children:
                    _children.remove(proc)
    res = Result(argv, proc.returncode, out, err.decode("utf-8", errors="replace"),
                 time.monotonic() - start)
    if timed_out:
        raise OcifsError(res, f"oci-fs did not finish within {timeout}s")
    if check and res.returncode != 0:
        raise OcifsError(res, "oci-fs failed")
    return res


class Mount:
    """`oci-fs mount [OPTS] REF DIR` as a context manager.

    Default: the daemonizing form; __enter__ returns once the command has
    exited 0 (docs/cli.md: "return once the mount is ready") and DIR is a
    mount point. foreground=True runs `-f` as our child and polls until DIR is
    mounted. __exit__ runs `fusermount3 -u` (falling back to `-u -z`) and
    waits for the daemon to exit. With stats=True a --stats-file is passed and
    `stats` holds the parsed JSON after exit.
    """

    def __init__(self, ref: str, directory: Path | str, *opts: str,
                 env: Mapping[str, str] | None = None, foreground: bool = False,
                 cache_dir: Path | str | None = None, stats: bool = False,
                 timeout: float = 60):
        self.ref = ref
        self.dir = Path(directory)
        self.opts = [str(o) for o in opts]
        self.env = env
        self.foreground = foreground
        self.timeout = timeout
        root = test_root()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.stats_path = Path(tempfile.mkstemp(prefix="stats-", suffix=".json", dir=root)[1]) if stats else None
        self.stats: dict | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self.result: Result | None = None

    def argv(self) -> list[str]:
        a = ["mount"]
        if self.foreground:
            a.append("-f")
        if self.cache_dir:
            a += ["--cache-dir", str(self.cache_dir)]
        if self.stats_path:
            a += ["--stats-file", str(self.stats_path)]
        return a + self.opts + [self.ref, str(self.dir)]

    def __enter__(self) -> "Mount":
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.stats_path:
            self.stats_path.unlink(missing_ok=True)
        if self.foreground:
            self._enter_foreground()
        else:
            self.result = run_ocifs(*self.argv(), env=self.env, timeout=self.timeout,
                                   check=False, kill_group=False)
            if self.result.returncode != 0:
                if is_mounted(self.dir):
                    unmount(self.dir)
                raise OcifsError(self.result, "oci-fs mount failed")
            if not is_mounted(self.dir):
                raise OcifsError(self.result, f"oci-fs mount exited 0 but {self.dir} is not mounted")
            bin_ = ocifs_bin()
            pids = find_processes(bin_, str(self.dir)) or find_processes(bin_, str(self.dir.resolve()))
            if pids:
                self.pid = pids[0]
                adopt(self.pid)
        return self

    def _enter_foreground(self) -> None:
        self._proc = spawn([ocifs_bin(), *self.argv()], env=isolated_env(self.env),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = self._proc.pid
        deadline = time.monotonic() + self.timeout
        while not is_mounted(self.dir):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                stop(self._proc)
                out, err = self._proc.communicate()
                self.result = Result(self.argv(), self._proc.returncode, out,
                                     err.decode(errors="replace"), self.timeout)
                raise OcifsError(self.result, "oci-fs mount -f did not mount")
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.unmount()

    def unmount(self, timeout: float = 15) -> None:
        """Unmounts (idempotent) and waits for the daemon; raises if it does not exit."""
        if is_mounted(self.dir):
            unmount(self.dir)
        gone = True
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                gone = False
            stop(self._proc)
            self._proc = None
        elif self.pid is not None:
            gone = wait_pid_gone(self.pid, timeout)
            if not gone:
                os.kill(self.pid, signal.SIGKILL)
            forget(self.pid)
        self.pid = None
        if self.stats_path and self.stats_path.exists() and self.stats is None:
            text = self.stats_path.read_text()
            self.stats = json.loads(text) if text.strip() else None
        if not gone:
            raise AssertionError(f"oci-fs daemon for {self.dir} did not exit {timeout}s after unmount")


def mount(ref: str, directory: Path | str, *opts: str, **kwargs) -> Mount:
    """Shorthand for Mount(ref, directory, *opts, **kwargs)."""
    return Mount(ref, directory, *opts, **kwargs)


def assert_secret_absent(secret: str, texts: Iterable[str | bytes]) -> None:
    """Fails if `secret` appears in any of `texts` (str or bytes)."""
    for t in texts:
        s = t.decode(errors="replace") if isinstance(t, bytes) else t
        assert secret not in s, f"secret leaked into output:\n{s[:2000]}"
