"""The loss logs of a training run: CSV rows and TensorBoard events.

- `CsvLog`: append-only CSV of losses; on resume, rows past the resumed step are dropped so that
  the step column only moves forward.
- `RunLog`: what the training loops write to: the CSV and/or TensorBoard events (``--log``),
  scalars, sample grids as images and the resolved config as text.

The run folder (`open_run`) is in `srpipe.engine.runfolder`, the stop signals (`StopFlag`) in
`srpipe.engine.signals`, `write_json` in `srpipe.io.files`.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import time
from pathlib import Path
from typing import get_args

from srpipe.config import LogMode
from srpipe.engine.runfolder import TB_DIR
from srpipe.errors import SrpipeError
from srpipe.io.files import atomic_write_bytes


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
        self._w.writerow(
            {"step": step, "time": round(time.time() - self._t0, 3), **{k: f"{v:.6g}" for k, v in values.items()}}
        )
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


LOG_MODES = get_args(LogMode)


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def log_targets(mode: str) -> tuple[bool, bool]:
    """(write CSV, write TensorBoard events) for `--log` auto|csv|tensorboard|both.

    auto is both when the `tensorboard` package is installed (the `tb` extra), CSV alone otherwise.
    """
    if mode not in LOG_MODES:
        raise SrpipeError(f"--log {mode!r}: use {', '.join(LOG_MODES)}")
    if mode == "auto":
        return True, tensorboard_available()
    if mode != "csv" and not tensorboard_available():
        raise SrpipeError(f"--log {mode} needs the tensorboard package: pip install 'srpipe[tb]' (or --log csv)")
    return mode != "tensorboard", mode != "csv"


def _tag(field: str) -> str:
    """TensorBoard tag of a log field: val_psnr_y -> val/psnr_y, d_real -> loss/d_real, lr -> train/lr."""
    if field.startswith("val_"):
        return "val/" + field[4:]
    if field in ("lr", "skipped"):
        return "train/" + field
    return "loss/" + field


class RunLog:
    """The log of one training phase: CSV rows (`CsvLog`) and/or TensorBoard events.

    Events go to ``out_dir/tb/<events>`` (``out_dir/tb`` when `events` is empty), one run per phase
    since each phase counts its steps from 1. Scalars are tagged ``loss/*``, ``val/*`` and
    ``train/lr``; `image` adds a (3, H, W) grid, and `config` (the run's config.json record) is
    written once as text at step 0.

    Resume (`resume_step` > 0) appends to the existing events; events past `resume_step` that a
    crash left behind are hidden by TensorBoard's purge marker (``purge_step``), as the CSV drops its
    rows. A fresh start (`resume_step` 0) clears the phase's event folder, as the CSV is rewritten.
    `close` flushes; `image` after `close` reopens the writer (the last sample grid is written after
    the loop has closed its log).
    """

    def __init__(
        self,
        out_dir: str | Path,
        csv_name: str,
        fields: list[str],
        *,
        resume_step: int = 0,
        mode: str = "auto",
        events: str = "",
        config: dict | None = None,
    ):
        write_csv, write_tb = log_targets(mode)
        self.csv = CsvLog(Path(out_dir) / csv_name, fields, resume_step=resume_step) if write_csv else None
        self.events_dir = Path(out_dir) / TB_DIR / events if write_tb else None
        self._tb = None
        self._closed = False
        self._images: set[tuple[str, int]] = set()
        self._purge = resume_step + 1 if resume_step > 0 else None
        if self.events_dir is not None:
            if resume_step == 0 and self.events_dir.is_dir():
                for f in self.events_dir.glob("events.out.tfevents.*"):
                    f.unlink()
            if config is not None and resume_step == 0:
                text = json.dumps(config, indent=2, sort_keys=True)
                # four-space indent: a code block in TensorBoard's markdown text view
                self._writer().add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)
                self._tb.flush()

    def _writer(self):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self.events_dir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(self.events_dir), purge_step=self._purge, flush_secs=30)
            self._purge = None  # one purge marker per resume, not per reopening
        return self._tb

    def write(self, step: int, values: dict[str, float]) -> None:
        if self.csv is not None:
            self.csv.write(step, values)
        if self.events_dir is not None:
            w = self._writer()
            for k, v in values.items():
                if v is not None and v == v:  # NaN (a metric with nothing to measure) is no point on a curve
                    w.add_scalar(_tag(k), float(v), step)

    def image(self, tag: str, step: int, img) -> None:
        """A (3, H, W) float image in [0, 1] (a sample grid) at `step`."""
        if self.events_dir is None or (tag, step) in self._images:
            return  # the loops may write the last step's grid twice (in the loop and after it)
        self._images.add((tag, step))
        reopened = self._closed
        self._writer().add_image(tag, img.detach().float().clamp(0, 1).cpu(), step, dataformats="CHW")
        self._tb.flush()
        if reopened:
            self._tb.close()
            self._tb = None

    def close(self) -> None:
        if self.csv is not None:
            self.csv.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        self._closed = True
