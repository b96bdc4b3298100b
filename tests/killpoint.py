"""Run an entry point as its own process and SIGKILL it at an exact point of its work (tests/test_kill_matrix.py).

A kill SPEC (JSON) is one of
- {"replace": REGEX, "when": "before"|"after", "n": N}: the N-th `os.replace` / `os.rename` whose destination
  matches REGEX (the final rename of rewardsoup.core.atomic's writes): killed instead of renaming, or right
  after the rename;
- {"call": "module:Attr.path", "when": "before"|"after", "n": N}: the N-th call of that function or method;
- {"timer": GLOB or null, "delay": SECONDS}: `delay` seconds after a path matching GLOB exists (after the start
  when null), if the command still runs: a kill at a random point (the test draws the delays from a seed).
The first two kill the process from inside with SIGKILL (no cleanup, no `finally`, no atexit), as `kill -9` from
outside would; the spec only makes the moment exact. Without a spec the entry point runs to its end.

`python train.py ARGS` costs ~10 s of imports on a loaded 2-core machine before any work, so the processes
come from a fork server (`Launcher`): one interpreter imports torch, transformers, mergekit, Optuna and the
project once, then forks a child per command. The child sets its own cwd, environment, stdout/stderr (a log
file) and `sys.argv`, and runs the script as `__main__` (runpy), as `python train.py ARGS` would; nothing of a
job runs in the server, so each child starts with empty caches. The server never runs a torch op, so no
thread pool is forked (torch's DataLoader forks its workers the same way).
"""

from __future__ import annotations

import functools
import glob
import importlib
import json
import os
import re
import runpy
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

PRELOAD = ("torch", "transformers", "transformers.trainer", "trl", "optuna", "mergekit.merge", "hydra",
           "rewardsoup.schemas", "rewardsoup.training.member", "rewardsoup.search.jobs",
           "rewardsoup.evaluation.job", "rewardsoup.sampling.job", "hydra_plugins.rewardsoup_optuna.sweeper")

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # one torch thread per job: the test machine's 2 cores are shared


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(fn, when: str, n: int, match=lambda *a, **k: True):
    seen = 0

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal seen
        hit = match(*args, **kwargs)
        seen += hit
        if hit and seen == n and when == "before":
            _die()
        out = fn(*args, **kwargs)
        if hit and seen == n:
            _die()
        return out

    return wrapper


def arm(spec: dict | None) -> None:
    """Install the kill point of `spec` in this process (a timer is the server's)."""
    if not spec or "timer" in spec:
        return
    when, n = spec["when"], int(spec["n"])
    if "replace" in spec:
        pattern = re.compile(spec["replace"])
        dst = lambda src, dst, *a, **k: bool(pattern.search(os.fspath(dst)))  # noqa: E731
        os.replace = _counting(os.replace, when, n, dst)
        os.rename = _counting(os.rename, when, n, dst)
        return
    module, _, path = spec["call"].partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    setattr(owner, name, _counting(getattr(owner, name), when, n))


def _child(req: dict) -> None:
    """In the forked child: become `python SCRIPT ARGS` (with the kill point armed) and exit with its code."""
    out = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    code = 1
    try:
        arm(req.get("spec"))
        sys.argv = list(req["argv"])
        sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # as `python script` sets it
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001  (printed, as the interpreter would, then exit code 1)
        traceback.print_exc()
    raise SystemExit(code)  # a normal interpreter exit: atexit handlers, flushed streams


def serve() -> None:
    """The fork server: preload, say `ready`, then per request line fork a child and report pid and exit code."""
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing a module prints can reach the reply pipe
    for name in PRELOAD:
        importlib.import_module(name)
    reply.write('{"ready": true}\n')
    reply.flush()
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            reply.close()
            _child(req)
        reply.write(json.dumps({"pid": pid}) + "\n")
        reply.flush()
        status = _wait(pid, req.get("spec") or {})
        reply.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        reply.flush()


def _wait(pid: int, spec: dict) -> int:
    """The child's wait status; with a timer spec, SIGKILL it when the timer fires while it still runs (it is
    not reaped before, so its pid cannot belong to another process)."""
    if "timer" not in spec:
        return os.waitpid(pid, 0)[1]
    fire = None if spec["timer"] else time.monotonic() + float(spec["delay"])
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if fire is None and glob.glob(spec["timer"]):
            fire = time.monotonic() + float(spec["delay"])
        if fire is not None and time.monotonic() >= fire:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.005)


class Launcher:
    """Client of the fork server: `run(argv, log, env, spec)` -> the command's exit code (-9 when killed)."""

    def __init__(self, cwd: Path):
        self.cwd = Path(cwd)
        self.proc = subprocess.Popen([sys.executable, __file__], cwd=self.cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, **ONE_THREAD})
        self._ready = False

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"fork server: no answer within {timeout:.0f}s (exit code {self.proc.poll()})")
        return json.loads(line)

    def run(self, argv: list[str], log: Path, env: dict, spec: dict | None = None, timeout: float = 600) -> int:
        """Run `python *argv` in cwd with `env` and the kill `spec`, output to `log`. Returns the exit code:
        0 done, -9 killed."""
        if not self._ready:
            self._read(300)
            self._ready = True
        req = {"argv": argv, "cwd": str(self.cwd), "env": {**env, **ONE_THREAD}, "spec": spec, "log": str(log)}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        pid = self._read(60)["pid"]
        try:
            return self._read(timeout)["rc"]
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # not reaped yet (the server still waits for it): still our child's pid
            self._read(60)  # its exit code: the next run reads its own
            raise

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    serve()
