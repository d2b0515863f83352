"""What every training run shares: its folder, resume checks, logging, progress and stop signals.

- `open_run(out_dir, config, restart=...)`: a run folder holds ``config.json`` (the resolved,
  result-changing config plus inputs). Rerunning with the same config resumes; another config is
  refused unless ``restart`` (then old checkpoints and logs are cleared).
- `CsvLog`: append-only CSV of losses; on resume, rows past the resumed step are dropped so that
  the step column only moves forward.
- `Progress`: a rich progress bar on stderr (step, it/s, ETA, latest losses).
- `StopFlag`: SIGINT/SIGTERM set a flag; the loop checkpoints at the next step and exits.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import time
from pathlib import Path

from srpipe.config import diff_configs
from srpipe.errors import SrpipeError
from srpipe.imageio import atomic_write_bytes


class ConfigChangedError(SrpipeError):
    pass


class Interrupted(SrpipeError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint (exit code 130)."""

    exit_code = 130


def write_json(path: str | Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def open_run(out_dir: str | Path, config: dict, *, restart: bool = False, clear: tuple[str, ...] = ("ckpt", "log.csv", "samples"),
             identity: str | None = None) -> Path:
    """Create or reopen a run folder for `config`; refuse a different existing config unless `restart`.

    `identity` (the pipeline's stage key: a hash of exactly what the stage's result depends on)
    replaces the comparison: the folder resumes when its recorded identity is the same, whatever
    else `config` says (settings outside the key, input and cache paths, recorded for information).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SrpipeError(f"--out {out} exists and is not a folder")
    cfg_path = out / "config.json"
    if identity is not None:
        config = {**config, "identity": identity}
    if cfg_path.is_file():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        same = old == config if identity is None else isinstance(old, dict) and old.get("identity") == identity
        if not same:
            if not restart:
                changes = diff_configs(old or {}, config)
                shown = "; ".join(changes[:4]) + (" ..." if len(changes) > 4 else "")
                raise ConfigChangedError(
                    f"{out} holds a run with another config ({shown}); use another --out, "
                    f"or --restart to discard that run"
                )
            for name in clear:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(cfg_path, config)
    return out


class CsvLog:
    """CSV log with a fixed header; reopening truncates rows with step > `resume_step`."""

    def __init__(self, path: str | Path, fields: list[str], *, resume_step: int = 0):
        self.path = Path(path)
        self.fields = ["step", "time"] + [f for f in fields if f not in ("step", "time")]
        rows = []
        if self.path.is_file() and resume_step > 0:
            with self.path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self._fh = self.path.open("a", newline="")
        self._w = csv.DictWriter(self._fh, self.fields, extrasaction="ignore")
        self._t0 = time.time()

    def write(self, step: int, values: dict[str, float]) -> None:
        self._w.writerow({"step": step, "time": round(time.time() - self._t0, 3), **{k: f"{v:.6g}" for k, v in values.items()}})
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class Progress:
    """Rich progress bar on stderr: step/total, it/s, ETA and the latest losses."""

    def __init__(self, total: int, start: int, description: str, *, enabled: bool = True):
        self._enabled = enabled  # off on DDP ranks other than 0
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from srpipe.cli.console import err

        self._p = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=err,
            transient=False,
        )
        self._task = self._p.add_task(description, total=total, completed=start, rate="", losses="")
        self._start, self._t0 = start, time.time()

    def __enter__(self):
        if self._enabled:
            self._p.start()
        return self

    def __exit__(self, *exc):
        if self._enabled:
            self._p.stop()

    def update(self, step: int, losses: dict[str, float] | None = None) -> None:
        if not self._enabled:
            return
        dt = time.time() - self._t0
        rate = f"{(step - self._start) / dt:.2f} it/s" if dt > 0 and step > self._start else ""
        fields = {"rate": rate}
        if losses is not None:
            fields["losses"] = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
        self._p.update(self._task, completed=step, **fields)


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the training loop polls (handlers restored on exit)."""

    def __init__(self):
        self.signal: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread): no handler
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    def __bool__(self) -> bool:
        return self.signal is not None
