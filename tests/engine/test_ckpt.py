"""ckpt: safetensors weights with headers, step checkpoints, `latest`, retention, crash safety."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from srpipe import __version__
from srpipe.engine import ckpt
from srpipe.engine.ckpt import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    read_header,
    save_checkpoint,
    save_weights,
)


def toy_nets(value: float) -> dict:
    sd = {"conv.weight": torch.full((2, 3), float(value)), "conv.bias": torch.arange(2.0) + value}
    return {"generator": (sd, "ToyNet", {"features": 2, "value": value})}


def failing(errno: int, text: str):
    """A stand-in for os.replace that fails like a full or broken disk."""

    def replace(src, dst):
        raise OSError(errno, text)

    return replace


def folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


# ---------------------------------------------------------------------------------------------
# Weights files


def test_weights_round_trip(tmp_path):
    state = {
        "a.weight": torch.randn(4, 3, 3, 3),
        "a.bias": torch.randn(4),
        "count": torch.tensor([3, 4], dtype=torch.int64),
        "half": torch.randn(5).to(torch.bfloat16),
        "view": torch.randn(4, 4).t(),  # non-contiguous views are saved as plain copies
    }
    args = {"num_feat": 8, "num_block": 1, "scale": 4, "act": "lrelu", "ratio": 0.2}
    save_weights(tmp_path / "g.safetensors", state, arch="RRDBNet", args=args, meta={"step": 12, "note": "x"})
    h = read_header(tmp_path / "g.safetensors")
    assert h["arch"] == "RRDBNet" and h["args"] == args and h["srpipe"] == __version__
    assert h["note"] == "x" and h["step"] == "12"  # meta values are strings (JSON for non-strings)
    loaded, h2 = load_weights(tmp_path / "g.safetensors")
    assert h2 == h and set(loaded) == set(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]  # no temp file left


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_refused(tmp_path, bad):
    w = torch.zeros(3)
    w[1] = bad
    with pytest.raises(CheckpointError, match="non-finite") as ei:
        save_weights(tmp_path / "g.safetensors", {"ok": torch.ones(2), "bad.weight": w}, arch="A", args={})
    assert "bad.weight" in str(ei.value)
    assert not (tmp_path / "g.safetensors").exists()


def test_non_tensor_entry_refused(tmp_path):
    with pytest.raises(CheckpointError, match="lr"):
        save_weights(tmp_path / "g.safetensors", {"w": torch.ones(1), "lr": 0.1}, arch="A", args={})


def test_read_header_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_header(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"this is not safetensors at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        read_header(tmp_path / "junk.safetensors")


def test_weights_write_error_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", failing(28, "No space left on device"))
    with pytest.raises(CheckpointError, match="No space left"):
        save_weights(tmp_path / "g.safetensors", {"w": torch.ones(1)}, arch="A", args={})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_latest_none_when_absent(tmp_path):
    assert latest_checkpoint(tmp_path / "nope") is None
    assert latest_checkpoint(tmp_path) is None


def test_save_checkpoint_keeps_last_k_and_writes_latest(tmp_path):
    root = tmp_path / "ckpt"
    for step in range(1, 6):
        final = save_checkpoint(root, step, toy_nets(step), {"note": f"s{step}"}, keep=2)
        assert final == root / f"step_{step:08d}"
        assert (root / "latest").read_text() == f"step_{step:08d}\n"
    assert folders(root) == ["step_00000004", "step_00000005"]
    assert latest_checkpoint(root) == root / "step_00000005"
    assert sorted(p.name for p in (root / "step_00000005").iterdir()) == ["generator.safetensors", "state.pt"]
    save_checkpoint(root, 6, toy_nets(6), {}, keep=3)
    assert folders(root) == ["step_00000004", "step_00000005", "step_00000006"]
    save_checkpoint(root, 7, toy_nets(7), {}, keep=1)
    assert folders(root) == ["step_00000007"]


def test_load_checkpoint_round_trip_with_adam(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / 100)
    x, y = torch.randn(16, 4), torch.randn(16, 1)

    def step(m, o, s):
        o.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        o.step()
        s.step()

    for _ in range(3):
        step(model, opt, sched)
    state = {"opt": opt.state_dict(), "sched": sched.state_dict(), "rng": ckpt.rng_state(), "epoch": 2, "best": 0.5}
    folder = save_checkpoint(tmp_path, 3, {"model": (model.state_dict(), "MLP", {"hidden": 8})}, state)
    expected_draw = torch.rand(3)  # what the RNG gives right after the save

    nets, loaded = load_checkpoint(latest_checkpoint(tmp_path))
    assert folder == tmp_path / "step_00000003"
    assert loaded["step"] == 3 and loaded["epoch"] == 2 and loaded["best"] == 0.5
    for k, v in model.state_dict().items():
        assert torch.equal(nets["model"][k], v)
    assert read_header(folder / "model.safetensors")["args"] == {"hidden": 8}

    model2 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model2.load_state_dict(nets["model"])
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2, betas=(0.5, 0.999))
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1.0 - s / 100)  # built before loading (it sets lr)
    opt2.load_state_dict(loaded["opt"])
    sched2.load_state_dict(loaded["sched"])
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)
    ckpt.set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected_draw)
    # the resumed optimizer takes exactly the same next step
    step(model, opt, sched)
    step(model2, opt2, sched2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_state_that_cannot_be_resumed_is_refused(tmp_path):
    save_checkpoint(tmp_path, 1, toy_nets(1), {"ok": 1})
    with pytest.raises(CheckpointError, match="numpy_rng") as ei:
        save_checkpoint(tmp_path, 2, toy_nets(2), {"numpy_rng": np.random.get_state()})
    assert "weights_only" in str(ei.value)
    assert folders(tmp_path) == ["step_00000001"]  # no temp folder left, previous one intact
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000001"
    # python's own RNG state is plain tuples of ints: accepted
    py_state = random.getstate()
    save_checkpoint(tmp_path, 3, toy_nets(3), {"py_rng": py_state})
    assert load_checkpoint(tmp_path / "step_00000003")[1]["py_rng"] == py_state


def test_os_error_during_save_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, toy_nets(1), {"v": 1})
    real_replace = os.replace

    def failing_replace(src, dst):  # the weights and state files go through, the folder rename fails
        if Path(src).name.endswith(".tmp") and Path(src).is_dir():
            raise OSError(122, "Disk quota exceeded")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match="Disk quota") as ei:
        save_checkpoint(tmp_path, 2, toy_nets(2), {"v": 2})
    assert "step_00000002" in str(ei.value)
    monkeypatch.setattr(os, "replace", real_replace)
    assert folders(tmp_path) == ["step_00000001"]
    nets, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 1 and torch.equal(nets["generator"]["conv.weight"], torch.full((2, 3), 1.0))


def test_write_error_inside_weights_cleans_temp(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, toy_nets(1), {})
    monkeypatch.setattr(os, "replace", failing(5, "Input/output error"))
    with pytest.raises(CheckpointError, match="Input/output"):
        save_checkpoint(tmp_path, 2, toy_nets(2), {})
    monkeypatch.undo()
    assert folders(tmp_path) == ["step_00000001"]
    assert (tmp_path / "latest").read_text() == "step_00000001\n"


def test_same_step_saved_again(tmp_path):
    save_checkpoint(tmp_path, 5, toy_nets(1), {"v": "first"})
    save_checkpoint(tmp_path, 5, toy_nets(2), {"v": "second"})
    nets, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["v"] == "second" and torch.equal(nets["generator"]["conv.weight"], torch.full((2, 3), 2.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000005"]


def test_pointer_to_moved_aside_folder_is_repaired(tmp_path):
    """A crash while re-saving the same step, between moving the old copy aside and renaming the new one."""
    save_checkpoint(tmp_path, 1, toy_nets(1), {})
    save_checkpoint(tmp_path, 2, toy_nets(2), {"v": 2})
    os.replace(tmp_path / "step_00000002", tmp_path / ".step_00000002.old")
    folder = latest_checkpoint(tmp_path)
    assert folder == tmp_path / "step_00000002" and folder.is_dir()
    assert load_checkpoint(folder)[1]["v"] == 2
    # pointer to a folder that is simply gone: the newest complete folder
    shutil.rmtree(tmp_path / "step_00000002")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000001"
    shutil.rmtree(tmp_path / "step_00000001")
    with pytest.raises(CheckpointError, match="incomplete"):
        latest_checkpoint(tmp_path)


def test_folders_from_an_abandoned_timeline_are_removed(tmp_path):
    save_checkpoint(tmp_path, 10, toy_nets(1), {})
    save_checkpoint(tmp_path, 30, toy_nets(3), {})
    (tmp_path / "latest").write_text("step_00000010\n")  # as if the run died before moving `latest` to 30
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000010"
    save_checkpoint(tmp_path, 20, toy_nets(2), {}, keep=2)  # resumed from 10, saves 20
    assert folders(tmp_path) == ["step_00000010", "step_00000020"]


def test_steps_sort_numerically_past_eight_digits(tmp_path):
    for s in (99_999_998, 99_999_999, 100_000_000):
        save_checkpoint(tmp_path, s, toy_nets(1), {}, keep=2)
    assert folders(tmp_path) == ["step_100000000", "step_99999999"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step_100000000"


# ---------------------------------------------------------------------------------------------
# Crash injection (a real SIGKILL in a child process)

CHILD = textwrap.dedent(
    """
    import os, sys, torch
    from srpipe.engine import ckpt
    root, fault = sys.argv[1], sys.argv[2]
    def nets(v):
        return {"generator": ({"w": torch.full((4,), float(v))}, "Toy", {"v": v})}
    ckpt.save_checkpoint(root, 1, nets(1), {"v": 1})
    os.environ["SRPIPE_FAULT"] = fault
    ckpt.save_checkpoint(root, 2, nets(2), {"v": 2})
    print("survived")
    """
)


@pytest.mark.parametrize("fault", ["ckpt-mid", "ckpt-before-latest"])
def test_kill_during_save_leaves_a_consistent_checkpoint(tmp_path, fault):
    root = tmp_path / "ckpt"
    env = {k: v for k, v in os.environ.items() if k != "SRPIPE_FAULT"}
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), fault], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert "survived" not in r.stdout
    # the child died after writing step 2's weights (ckpt-mid) or its whole folder (before-latest)
    assert (root / ".step_00000002.tmp").is_dir() == (fault == "ckpt-mid")
    assert (root / "step_00000002").is_dir() == (fault == "ckpt-before-latest")
    folder = latest_checkpoint(root)
    assert folder == root / "step_00000001"  # `latest` was never moved: step 1, complete and consistent
    nets, state = load_checkpoint(folder)
    assert state["step"] == 1 and state["v"] == 1
    assert torch.equal(nets["generator"]["w"], torch.full((4,), 1.0))
    # resuming saves step 2 over the debris
    save_checkpoint(root, 2, {"generator": ({"w": torch.full((4,), 2.0)}, "Toy", {})}, {"v": 2})
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000001", "step_00000002"]
    assert load_checkpoint(latest_checkpoint(root))[1]["step"] == 2


# ---------------------------------------------------------------------------------------------


def test_unwrap():
    inner = torch.nn.Linear(2, 2)

    class Compiled(torch.nn.Module):  # what torch.compile's OptimizedModule looks like
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

    assert ckpt.unwrap(Compiled(inner)) is inner
    assert ckpt.unwrap(Compiled(Compiled(inner))) is inner
    assert ckpt.unwrap(inner) is inner
    assert set(ckpt.unwrap(Compiled(inner)).state_dict()) == {"weight", "bias"}  # no `_orig_mod.` prefix
