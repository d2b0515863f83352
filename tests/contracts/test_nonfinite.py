"""Numerical faults: a non-finite loss skips its update on the device; repeated ones stop
training with the last good checkpoint kept; NaN weights are never saved."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import accel, ckpt
from srpipe.config import RunOptions, build_config
from srpipe.degrade import losses as dsgan_losses
from srpipe.degrade import train as dsgan
from srpipe.degrade.config import DegradeConfig
from srpipe.upscale import losses as esrgan_losses
from srpipe.upscale import train as esrgan
from srpipe.upscale.config import PRESETS, UpscaleConfig

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def poison(monkeypatch, module, name, bad_calls):
    """Make `module.name` return NaN on the calls (1-based) in `bad_calls`, the real value otherwise."""
    real, calls = getattr(module, name), []

    def fake(*args, **kwargs):
        calls.append(1)
        value = real(*args, **kwargs)
        return value * math.nan if len(calls) in bad_calls else value

    monkeypatch.setattr(module, name, fake)
    return calls


def snapshot(*objs) -> list[torch.Tensor]:
    out = []
    for o in objs:
        if isinstance(o, torch.nn.Module):
            out += [t.detach().clone() for t in list(o.parameters()) + list(o.buffers())]
        else:  # an optimizer: its moments and step counts
            out += [t.clone() for s in o.state.values() for t in s.values()]
    return out


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("fused", [True, False])
def test_a_nan_loss_leaves_weights_moments_and_batchnorm_statistics_unchanged(fused):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 1, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=fused)
    guard = accel.StepGuard(CPU)
    x = torch.rand(2, 3, 6, 6)

    def step(scale: float) -> torch.Tensor:
        guard.begin(net)
        opt.zero_grad(set_to_none=True)
        guard.backward(net(x * scale).square().mean() + 0 * scale)
        guard.step(opt)
        return guard.end()

    assert float(step(1.0)) == 0  # a good step: Adam state exists from here on
    before = snapshot(net, opt)
    assert float(step(math.nan)) == 1 and float(step(math.inf)) == 1  # NaN inputs even reach the BN statistics
    assert same(before, snapshot(net, opt)) and float(guard.streak) == 2
    assert float(step(1.0)) == 0 and float(guard.streak) == 0
    assert not same(before, snapshot(net, opt))


def test_a_nan_added_to_finite_terms_still_skips():
    # NaN + finite terms: the gradients of the finite terms are finite; the guard must still skip.
    p = torch.nn.Parameter(torch.ones(3))
    opt = accel.adam([p], lr=0.1, betas=(0.9, 0.99), device=CPU)
    guard = accel.StepGuard(CPU)
    guard.begin()
    guard.backward(p.sum() + torch.tensor(math.nan))
    assert float(guard.step(opt)) == 1 and torch.equal(p.detach(), torch.ones(3))


def test_loss_meter_means_finite_values_and_counts_skips():
    m = accel.LossMeter()
    m.add({"a": torch.tensor(1.0), "b": torch.tensor(math.nan)}, torch.tensor(1.0))
    m.add({"a": torch.tensor(3.0), "b": torch.tensor(math.nan)}, torch.tensor(0.0))
    means, skipped, extra = m.read(extra=[torch.tensor(7.0)])
    assert means["a"] == 2.0 and math.isnan(means["b"]) and skipped == 1 and extra == [7.0]
    m.add({"a": torch.tensor(5.0), "b": torch.tensor(2.0)}, torch.tensor(0.0))
    assert m.read()[:2] == ({"a": 5.0, "b": 2.0}, 0)


TINY_DSGAN = {
    "data": {"hr_crop": 32, "val_fraction": 0.0},
    "model": {"features": 8, "res_blocks": 1, "d_features": 8},
    "loss": {"perceptual": "none", "w_adv": 0.05},
    "optim": {"batch": 2, "iters": 6, "lr": 1e-3},
}


@pytest.fixture
def dsgan_data(tmp_path):
    return make_folder(tmp_path / "hr", 2, (40, 40)), make_folder(tmp_path / "lr", 2, (16, 16), prefix="lr", seed=1)


def test_dsgan_skips_a_nan_step_and_logs_it(tmp_path, dsgan_data, monkeypatch):
    hr, lr = dsgan_data
    poison(monkeypatch, dsgan_losses, "color_loss", {3})  # g_step calls it once per step
    cfg = build_config(DegradeConfig, preset=TINY_DSGAN)
    out = tmp_path / "run"
    dsgan.train(
        cfg,
        hr_dir=hr,
        real_lr_dir=lr,
        out_dir=out,
        run=RunOptions(device="cpu", log_every=1, ckpt_every=1, keep_ckpts=9),
    )
    g = {s: ckpt.load_checkpoint(out / "ckpt" / f"step_0000000{s}")[0]["generator"] for s in (2, 3, 4)}
    assert all(torch.equal(g[2][k], g[3][k]) for k in g[2])  # G's update at step 3 was skipped
    assert any(not torch.equal(g[3][k], g[4][k]) for k in g[3])  # and training went on
    rows = [r.split(",") for r in (out / "log.csv").read_text().splitlines()]
    col = rows[0].index("skipped")
    assert [r[col] for r in rows[1:]] == ["0", "0", "1", "0", "0", "0"]
    assert (out / "generator.safetensors").is_file()


def test_dsgan_stops_after_repeated_nan_losses_keeping_the_last_good_checkpoint(
    tmp_path, dsgan_data, monkeypatch, caplog
):
    hr, lr = dsgan_data
    poison(monkeypatch, dsgan_losses, "color_loss", set(range(3, 100)))
    cfg = build_config(DegradeConfig, preset=TINY_DSGAN)
    out = tmp_path / "run"
    run = RunOptions(device="cpu", log_every=1, ckpt_every=2, max_bad_steps=3)
    with pytest.raises(
        accel.NonFiniteError, match=r"step 5: the loss was non-finite \(NaN/Inf\) 3 steps in a row"
    ) as e:
        dsgan.train(cfg, hr_dir=hr, real_lr_dir=lr, out_dir=out, run=run)
    assert "step_00000004" in str(e.value) and "--precision fp32" in str(e.value)
    assert not (out / "generator.safetensors").exists()
    assert (out / "ckpt" / "latest").read_text().strip() == "step_00000004"
    kept = ckpt.load_checkpoint(out / "ckpt" / "step_00000004")[0]["generator"]
    good = ckpt.load_checkpoint(out / "ckpt" / "step_00000002")[0]["generator"]
    assert all(torch.isfinite(v).all() and torch.equal(v, good[k]) for k, v in kept.items())
    assert "non-finite loss" in caplog.text


@pytest.fixture
def pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for d in ("hr", "lr"):
        (root / d).mkdir(parents=True)
    for i in range(2):
        hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "hr" / f"im{i}.png"), hr)
        cv2.imwrite(str(root / "lr" / f"im{i}.png"), cv2.resize(hr, (12, 12), interpolation=cv2.INTER_AREA))
    return root


def test_sr_train_skips_nan_steps_then_stops_with_a_message(tmp_path, pairs, monkeypatch):
    poison(monkeypatch, esrgan_losses, "pixel_loss", {2} | set(range(4, 100)))
    cfg = build_config(
        UpscaleConfig,
        preset=PRESETS["tiny"],
        sets=[
            "data.hr_patch=32",
            "model.num_feat=8",
            "model.num_block=1",
            "model.num_grow_ch=8",
            "batch=2",
            "psnr.iters=20",
            "gan.iters=0",
            "data.val_fraction=0",
        ],
    )
    out = tmp_path / "run"
    run = RunOptions(device="cpu", log_every=1, ckpt_every=1, keep_ckpts=9, max_bad_steps=4)
    with pytest.raises(accel.NonFiniteError, match=r"psnr phase at step 7: .* 4 steps in a row") as e:
        esrgan.train(cfg, pairs=pairs, out_dir=out, run=run)
    assert "psnr.lr" in str(e.value)
    ck = out / "ckpt" / "psnr"
    g = {s: ckpt.load_checkpoint(ck / f"step_0000000{s}")[0]["generator"] for s in (1, 2, 3, 6)}
    assert all(torch.equal(g[1][k], g[2][k]) for k in g[1])  # step 2 skipped
    assert any(not torch.equal(g[2][k], g[3][k]) for k in g[2])  # step 3 applied
    assert all(torch.equal(g[3][k], g[6][k]) for k in g[3])  # steps 4-6 skipped, still saved as good
    assert not (ck / "step_00000007").exists() and not (out / "psnr.safetensors").exists()
