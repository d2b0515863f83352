"""bench/quality.py's cache and scheduler: content-keyed folders, one lock per entry, N workers.

A `Task` builds one folder WORK/WHAT/KEY; its key is computed from its dependencies' keys (never
from timing or paths), so equal inputs give one entry that every task naming them shares (the SR
model on bicubic pairs serves every degradation). An entry counts once its DONE marker exists
(wall and CPU seconds of the build, as JSON); a run killed midway leaves unfinished entries
without it, and the next run rebuilds them (trainers resume from their own checkpoints there).

Workers are independent processes running `run_tasks` over the same task list: each takes the first
task whose dependencies are done and whose entry it can lock (an atomic `mkdir KEY.lock` holding the
owner's host and pid; the lock of a dead owner on this host is taken over), so two workers never
build one entry. A build that raises leaves a FAILED marker with the traceback: the other workers
and the tasks that depend on it skip it, and the next run (which clears FAILED markers) retries.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POLL_S = 5.0  # seconds between looks at entries other workers hold


@dataclass(frozen=True)
class Task:
    """One cached build. `key(dep_keys)` -> str; `build(out, dep_dirs)` fills `out`."""

    name: str  # logical name, e.g. "sr:bicubic"
    what: str  # cache category: WORK/WHAT/KEY
    deps: tuple[str, ...]
    key: Callable[[dict[str, str]], str]
    build: Callable[[Path, dict[str, Path]], None]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def try_lock(entry: Path) -> Path | None:
    """The lock folder of `entry` if this process now holds it, else None (another live process does)."""
    lock = entry.with_name(entry.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(3):
        try:
            lock.mkdir()
        except FileExistsError:
            try:
                host, pid = (lock / "owner").read_text().split()
            except (OSError, ValueError):  # being created right now: treat as held
                return None
            if host != socket.gethostname() or _alive(int(pid)):
                return None
            stale = lock.with_name(f"{lock.name}.stale-{os.getpid()}")
            try:
                lock.rename(stale)  # one process wins the takeover; the others see the new lock
            except OSError:
                return None
            shutil.rmtree(stale, ignore_errors=True)
            continue
        (lock / "owner").write_text(me)
        return lock
    return None


def unlock(lock: Path) -> None:
    shutil.rmtree(lock, ignore_errors=True)


def done_seconds(folder: Path) -> dict:
    """{"wall_s", "cpu_s"} of a finished entry (older DONE files hold the wall seconds only)."""
    text = (folder / "DONE").read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"wall_s": float(text), "cpu_s": None}


def build_entry(out: Path, build: Callable[[Path], None]) -> None:
    """Run `build(out)` and write DONE with its wall and CPU (this process) seconds."""
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    build(out)
    stats = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
    (out / "DONE").write_text(json.dumps(stats) + "\n")


def clear_failed(work: Path) -> None:
    for p in work.glob("*/*/FAILED"):
        p.unlink()


def run_tasks(tasks: list[Task], work: Path, *, label: str = "", log=print) -> dict[str, Path]:
    """Build every task (dependencies first, whichever this worker can lock); {name: folder} of the done ones.

    Returns when every task is done, failed, or depends on a failed one.
    """
    by_name = {t.name: t for t in tasks}
    keys: dict[str, str] = {}
    done: dict[str, Path] = {}
    failed: set[str] = set()
    while True:
        progressed, waiting = False, False
        for t in tasks:
            if t.name in done or t.name in failed:
                continue
            if any(d in failed for d in t.deps):
                failed.add(t.name)
                progressed = True
                continue
            if not all(d in done for d in t.deps):
                waiting = True
                continue
            if t.name not in keys:
                keys[t.name] = t.key({d: keys[d] for d in t.deps})
            out = work / t.what / keys[t.name]
            if (out / "DONE").exists():
                done[t.name] = out
                progressed = True
                continue
            if (out / "FAILED").exists():
                failed.add(t.name)
                progressed = True
                continue
            lock = try_lock(out)
            if lock is None:
                waiting = True
                continue
            try:
                if not (out / "DONE").exists():  # another worker may have finished it just before the lock
                    log(f"{label}building {t.what}/{keys[t.name]} ({t.name})")
                    build_entry(out, lambda o, t=t: t.build(o, {d: done[d] for d in t.deps}))
                done[t.name] = out
            except Exception:
                log(f"{label}FAILED {t.name}:\n{traceback.format_exc()}")
                out.mkdir(parents=True, exist_ok=True)
                (out / "FAILED").write_text(traceback.format_exc())
                failed.add(t.name)
            finally:
                unlock(lock)
            progressed = True
            break  # back to the top: earlier tasks in the order may be ready now
        if not progressed:
            if not waiting:
                return done
            time.sleep(POLL_S)
        missing = [n for n in by_name if n not in done and n not in failed]
        if not missing:
            return done


def stderr_log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _worker_argv(argv: list[str]) -> list[str]:
    """This run's arguments for a worker process: same run, one job, one thread."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--jobs", "--threads"):
            skip = True
            continue
        if a.startswith(("--jobs=", "--threads=")):
            continue
        out.append(a)
    return [*out, "--worker", "--jobs", "1", "--threads", "1"]


def spawn_workers(n: int, script: str, argv: list[str]) -> None:
    """Run `n` processes of `script argv --worker` (one thread each) and wait for all of them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, script, *_worker_argv(argv)], env=env) for _ in range(n)]
    codes = [p.wait() for p in procs]
    if any(codes):
        stderr_log(f"worker exit codes {codes}: the table shows what finished")
