"""Crash safety under SIGKILL.

Tiny `srpipe degrade-train`, `sr-train` and `run` commands are started in child processes and killed
with SIGKILL, 8 times in all, always at a fault point (`SRPIPE_FAULT`, see `srpipe.io._faults`):
mid-training while a sample grid is written (checkpoints and logs already behind it), inside a
checkpoint, and inside the final writes. A fault point is a place in the code, not a moment in
time, so a faster or slower machine kills at the same step. After every kill the run folder is checked, then the same command is started again:

- it resumes from the last complete checkpoint (the step it reports is the one `latest` named);
- no file is truncated: every PNG, .safetensors, .json, state.pt and CSV in the folder parses
  (hidden `.name.tmp` files are the only debris a kill may leave, and nothing reads them);
- the step count only moves forward (`latest` never goes back, log steps strictly increase);
- the orchestrator never marks an interrupted stage complete: no manifest.json in an entry whose
  stage did not finish, `srpipe status` says "interrupted", and every manifest's output hashes
  match the files.

The children are forked from a forkserver that has imported torch and srpipe once, so each start
costs milliseconds, not the seconds of a fresh interpreter; they are separate processes running
`srpipe.cli.main(argv)`, killed with a real SIGKILL.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import signal
from pathlib import Path

import cv2
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import make_folder
from srpipe.engine import ckpt
from srpipe.cli import main

pytestmark = pytest.mark.slow  # child processes trained and killed again and again

CHILD = """
import os
fd = os.open({log!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(fd, 1)
os.dup2(fd, 2)
for k in ("SRPIPE_FAULT", "SRPIPE_DEBUG"):
    os.environ.pop(k, None)
os.environ.update({env!r})
import torch
torch.set_num_threads(1)
from srpipe.cli import main
main({argv!r})
"""

_ctx = None


def _context():
    """A forkserver with torch and srpipe preloaded (it never runs a torch op, so forking is safe)."""
    global _ctx
    if _ctx is None:
        _ctx = multiprocessing.get_context("forkserver")
        # torchvision pulls in torch._dynamo (seconds): import it here once, not in every child
        _ctx.set_forkserver_preload(
            [
                "torch",
                "torchvision",
                "rich.progress",
                "srpipe.cli",
                "srpipe.degrade.train",
                "srpipe.degrade.pairs",
                "srpipe.upscale.train",
                "srpipe.pipeline.run",
                "srpipe.pipeline.report",
            ]
        )
    return _ctx


class Child:
    """`srpipe ARGV` in a child process; output appended to `log`."""

    def __init__(self, argv: list, log: Path, env: dict[str, str]):
        self.log = log
        code = CHILD.format(log=str(log), env=env, argv=[str(a) for a in argv])
        self.proc = _context().Process(target=exec, args=(code, {}), daemon=True)
        self.proc.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def wait(self, timeout: float = 120) -> int:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join()
            pytest.fail(f"child still running after {timeout} s:\n{self.output()[-3000:]}")
        return self.proc.exitcode


class Runner:
    """Starts one command again and again in the same folder, with a log per attempt."""

    def __init__(self, tmp_path: Path, argv: list, env: dict[str, str]):
        self.tmp, self.argv, self.env, self.n = tmp_path, argv, env, 0

    def start(self, fault: str | None = None) -> Child:
        self.n += 1
        env = dict(self.env, **({"SRPIPE_FAULT": fault} if fault else {}))
        return Child(self.argv, self.tmp / f"attempt_{self.n}.log", env)

    def killed_by_fault(self, fault: str) -> str:
        c = self.start(fault)
        code = c.wait()
        assert code == -signal.SIGKILL, f"fault {fault} did not fire (exit {code}):\n{c.output()[-3000:]}"
        return c.output()


# ---------------------------------------------------------------------------------------------
# Checks after every kill


def check_files(root: Path) -> None:
    """Every result file under `root` parses; only hidden temporary files may be debris."""
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            # debris of a killed write: a temp file or a checkpoint folder under construction
            assert any(part.endswith(".tmp") or part.endswith(".old") for part in rel.parts), p
            continue
        if not p.is_file():
            continue
        if p.suffix == ".png":
            assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None, f"{p} does not decode"
        elif p.suffix == ".safetensors":
            assert load_file(str(p)), p
            ckpt.read_header(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.name == "state.pt":
            torch.load(p, weights_only=True)
        elif p.suffix == ".csv":
            log_steps(p)


def log_steps(path: Path) -> list[int]:
    """Steps of a CSV log: every row complete, steps strictly increasing."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["step", "time"], header
    assert all(len(r) == len(header) for r in body), f"{path}: a row was cut short"
    steps = [int(r[0]) for r in body]
    assert steps == sorted(set(steps)), f"{path}: steps {steps} do not strictly increase"
    return steps


def latest_step(ckpt_dir: Path) -> int:
    folder = ckpt.latest_checkpoint(ckpt_dir)
    if folder is None:
        return 0
    nets, state = ckpt.load_checkpoint(folder)  # weights and state of one consistent step
    assert nets and int(state["step"]) == int(folder.name.split("_")[1])
    return int(state["step"])


def pointer(ckpt_dir: Path) -> int:
    """The step `latest` names, 0 before the first checkpoint."""
    try:
        return int((ckpt_dir / "latest").read_text().strip().split("_")[1])
    except (OSError, IndexError, ValueError):
        return 0


def resumed_at(output: str) -> int | None:
    marker = " at step "
    for line in output.splitlines():
        if "resuming" in line and marker in line:
            return int(line.split(marker)[1].split("/")[0])
    return None


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"SRPIPE_CACHE_DIR": str(tmp_path / "decode-cache"), "SRPIPE_OFFLINE": "1"}


# ---------------------------------------------------------------------------------------------


DEGRADE = [
    "--preset",
    "tiny",
    "--iters",
    "60",
    "--ckpt-every",
    "5",
    "--sample-every",
    "7",
    "--device",
    "cpu",
    "--set",
    "data.hr_crop=32",
    "--set",
    "model.features=8",
    "--set",
    "model.res_blocks=1",
    "--set",
    "model.d_features=8",
    "--set",
    "optim.batch=2",
    "--set",
    "data.val_fraction=0",
]


def test_degrade_train_survives_sigkill(tmp_path, env, capsys):
    """4 kills: mid-training (writing the step-14 sample grid, after the step-10 checkpoint), then inside
    a checkpoint (weights written, state not), between a checkpoint folder and its `latest` pointer,
    and between writing the final generator and its rename."""
    hr = make_folder(tmp_path / "hr", 3, (48, 48), seed=1)
    lr = make_folder(tmp_path / "lr", 3, (24, 24), seed=2)
    run = tmp_path / "run"
    runner = Runner(tmp_path, ["degrade-train", "--hr", hr, "--lr", lr, "--out", run, *DEGRADE], env)
    history = []

    def after_kill():
        check_files(run)
        step = latest_step(run / "ckpt")
        assert not history or step >= history[-1], f"latest went back from {history[-1]} to {step}"
        history.append(step)
        assert not (run / "generator.safetensors").exists()
        return step

    # 1. mid-training: checkpoints every 5 steps, samples every 7: killed writing step 14's grid
    out = runner.killed_by_fault("write:samples/step_00000014.png")
    before = after_kill()
    assert before == 10 and pointer(run / "ckpt") == 10 and log_steps(run / "log.csv")[-1] <= 14
    assert list((run / "samples").glob(".step_00000014.png.*.tmp"))

    # 2. inside the next checkpoint: its weights are written, its state is not
    out = runner.killed_by_fault("ckpt-mid")
    assert resumed_at(out) == before
    assert after_kill() == before  # the half-written checkpoint does not count
    assert list((run / "ckpt").glob(".step_*.tmp")), "the kill should have left an incomplete checkpoint"

    # 3. after the next checkpoint folder is in place, before `latest` moves to it
    out = runner.killed_by_fault("ckpt-before-latest")
    assert resumed_at(out) == before
    assert after_kill() == before and (run / "ckpt" / f"step_{before + 5:08d}").is_dir()

    # 4. at the very end: generator.safetensors written to its temp file, not renamed
    out = runner.killed_by_fault("write:run/generator.safetensors")
    assert resumed_at(out) == before
    assert after_kill() == 60
    assert list(run.glob(".generator.safetensors.*.tmp"))

    # the same command finishes: resumes at the last step and writes the generator
    c = runner.start()
    assert c.wait() == 0, c.output()[-3000:]
    assert resumed_at(c.output()) == 60
    check_files(run)
    steps = log_steps(run / "log.csv")
    assert steps[-1] == 60 and steps[0] == 1
    assert sorted(p.name for p in (run / "ckpt").glob("step_*")) == ["step_00000055", "step_00000060"]

    # and the result is the one an uninterrupted run gives: every resume continued the same stream
    torch.set_num_threads(1)
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in ["degrade-train", "--hr", hr, "--lr", lr, "--out", tmp_path / "clean", *DEGRADE]])
    assert e.value.code == 0, capsys.readouterr().err
    a, b = load_file(str(run / "generator.safetensors")), load_file(str(tmp_path / "clean" / "generator.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


SR = [
    "--preset",
    "tiny",
    "--psnr-iters",
    "40",
    "--gan-iters",
    "24",
    "--ckpt-every",
    "4",
    "--val-every",
    "9",
    "--set",
    "data.hr_patch=32",
    "--set",
    "model.num_feat=8",
    "--set",
    "model.num_block=1",
    "--set",
    "batch=2",
    "--set",
    "model.d_features=8",
    "--set",
    "data.val_fraction=0.25",
    "--device",
    "cpu",
]


def test_sr_train_survives_sigkill_in_both_phases(tmp_path, env):
    """2 kills mid-phase, while a sample grid is written: one in the PSNR phase, one in the GAN phase."""
    pairs = tmp_path / "pairs"
    make_folder(pairs / "hr", 4, (64, 64), seed=3)
    make_folder(pairs / "lr", 4, (16, 16), seed=3)
    run = tmp_path / "run"
    runner = Runner(tmp_path, ["sr-train", "--pairs", pairs, "--out", run, *SR], env)

    runner.killed_by_fault("write:samples/psnr_00000018.png")  # checkpoints every 4, samples every 9
    check_files(run)
    psnr_at = latest_step(run / "ckpt" / "psnr")
    assert psnr_at == 16 and not (run / "psnr.safetensors").exists()

    out = runner.killed_by_fault("write:samples/gan_00000009.png")
    assert resumed_at(out) == psnr_at
    check_files(run)
    assert (run / "psnr.safetensors").is_file() and not (run / "gan.safetensors").exists()
    assert log_steps(run / "log_psnr.csv")[-1] == 40
    gan_at = latest_step(run / "ckpt" / "gan")

    c = runner.start()
    assert c.wait() == 0, c.output()[-3000:]
    out = c.output()
    assert "psnr phase already complete" in out and f"resuming the gan phase in {run} at step {gan_at}/24" in out
    check_files(run)
    assert log_steps(run / "log_gan.csv")[-1] == 24
    assert (run / "gan.safetensors").is_file()


PIPELINE = """
[inputs]
hr = "hr"
real_lr = "lr"

[degrade]
method = "dsgan"
preset = "tiny"
[degrade.config.data]
hr_crop = 32
val_fraction = 0.0
[degrade.config.model]
features = 8
res_blocks = 1
d_features = 8
[degrade.config.optim]
batch = 2
iters = 20

[sr]
enabled = false
"""


def check_cache(cache: Path) -> dict[str, list[Path]]:
    """Entries by stage; a manifest may exist only where every output it lists is there, unchanged."""
    entries: dict[str, list[Path]] = {}
    for stage_dir in sorted(p for p in cache.iterdir() if p.is_dir()):
        for entry in sorted(stage_dir.glob("*/*")):
            check_files(entry)
            entries.setdefault(stage_dir.name, []).append(entry)
            m = entry / "manifest.json"
            if m.exists():
                manifest = json.loads(m.read_text())
                assert manifest["key"] == entry.name
                for rel, size, sha in manifest["outputs"]:
                    data = (entry / rel).read_bytes()
                    assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, rel
    return entries


def status(capsys, pipe: Path, tmp_path: Path) -> dict[str, str]:
    with pytest.raises(SystemExit) as e:
        main(["status", str(pipe), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert e.value.code == 0
    rows: dict[str, str] = {}
    current = None
    for line in out.splitlines():  # table rows, a long reason possibly wrapped onto continuation lines
        cells = [c.strip() for c in line.split("│")]
        if len(cells) < 3:
            continue
        if cells[1]:
            current = cells[1]
            rows[current] = " ".join(cells[2:])
        elif current:
            rows[current] += " " + " ".join(cells[2:])
    return rows


def test_pipeline_never_marks_an_interrupted_stage_complete(tmp_path, env, capsys):
    """2 kills: right before the degrade stage's manifest, and inside make-pairs' pairs.json write."""
    make_folder(tmp_path / "hr", 3, (48, 48), seed=1)
    make_folder(tmp_path / "lr", 3, (24, 24), seed=2)
    pipe = tmp_path / "pipe.toml"
    pipe.write_text(PIPELINE)
    runner = Runner(
        tmp_path, ["run", pipe, "--out", tmp_path / "run", "--cache", tmp_path / "cache", "--device", "cpu"], env
    )

    runner.killed_by_fault("manifest")
    [degrade] = check_cache(tmp_path / "cache")["degrade"]
    assert (degrade / "generator.safetensors").is_file() and not (degrade / "manifest.json").exists()
    rows = status(capsys, pipe, tmp_path)
    assert "stale" in rows["degrade"] and "interrupted" in rows["degrade"]
    assert "missing" in rows["pairs"]

    out = runner.killed_by_fault("write:pairs.json")
    assert "took over a stale lock" in out and "degrade: resuming" in out
    assert resumed_at(out) == 20  # the trained generator was kept: nothing retrained
    entries = check_cache(tmp_path / "cache")
    assert (degrade / "manifest.json").is_file()
    [pairs] = entries["pairs"]
    assert list((pairs / "lr").glob("*.png")) and not (pairs / "pairs.json").exists()
    assert not (pairs / "manifest.json").exists()
    rows = status(capsys, pipe, tmp_path)
    assert "fresh" in rows["degrade"] and "stale" in rows["pairs"] and "interrupted" in rows["pairs"]

    c = runner.start()
    assert c.wait() == 0, c.output()[-3000:]
    out = c.output()
    assert "degrade: cached" in out and "pairs: resuming" in out
    entries = check_cache(tmp_path / "cache")
    assert all((e / "manifest.json").is_file() for es in entries.values() for e in es)
    assert json.loads((pairs / "pairs.json").read_text())["pairs"]
    rows = status(capsys, pipe, tmp_path)
    assert "fresh" in rows["degrade"] and "fresh" in rows["pairs"]
