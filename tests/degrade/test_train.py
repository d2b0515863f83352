"""DSGAN training (srpipe.degrade.train): the D learning-rate scale, schedule, training, resume, refusals."""

from __future__ import annotations

import json

import pytest
import torch

from srpipe.engine import ckpt, loop
from tests.helpers import cpu_run, dsgan_cfg
from srpipe.config import build_config
from srpipe.degrade.archs import DSGANGenerator
from srpipe.degrade.config import PRESETS, DegradeConfig, OptimConfig
from srpipe.degrade.train import lr_at, train
from srpipe.engine.runfolder import ConfigChangedError
from srpipe.engine.signals import Interrupted
from srpipe.engine.weights import MissingWeightsError


def test_d_lr_scale_sets_the_discriminators_lr_only(tiny_hr, tiny_lr, tmp_path, monkeypatch):
    from srpipe.engine import accel

    opts = []
    real_adam = accel.adam
    monkeypatch.setattr(accel, "adam", lambda *a, **k: opts.append(real_adam(*a, **k)) or opts[-1])
    c = dsgan_cfg(**{"optim.d_lr_scale": 0.25, "model.d_spectral_norm": "true", "optim.iters": 2})
    train(c, hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "run", run=cpu_run())
    opt_g, opt_d = opts  # built in this order by train()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.25e-3)
    with pytest.raises(ValueError, match="d_lr_scale"):
        OptimConfig(d_lr_scale=0)
    paper = build_config(DegradeConfig, preset=PRESETS["paper"])
    assert paper.optim.d_lr_scale == 1.0 and paper.model.d_spectral_norm is False


def test_lr_schedule_constant_then_linear_to_zero():
    o = OptimConfig(lr=1.0, iters=100, decay_start=0.5)
    assert lr_at(0, o) == 1.0 and lr_at(49, o) == 1.0
    assert lr_at(50, o) == pytest.approx(1.0)
    assert lr_at(75, o) == pytest.approx(0.5)
    assert lr_at(100, o) == 0.0


def test_training_changes_weights_and_writes_outputs(tiny_hr, tiny_lr, tmp_path):
    out = tmp_path / "run"
    gpath = train(dsgan_cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=cpu_run())
    assert gpath == out / "generator.safetensors"
    state, header = ckpt.load_weights(gpath)
    assert header["arch"] == "DSGANGenerator" and header["args"] == {
        "features": 8,
        "res_blocks": 1,
        "noise_channels": 0,
        "residual": False,
    }
    assert json.loads(header["scale"]) == 4
    torch.manual_seed(0)
    init = DSGANGenerator(features=8, res_blocks=1).state_dict()
    assert any(not torch.equal(init[k], state[k]) for k in init)
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,time,lr,d_real,d_fake,color,adv")
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    for r in rows[1:]:
        vals = [float(v) for v in r.split(",")[2:] if v]
        assert all(v == v and abs(v) < 1e6 for v in vals)
    assert (out / "samples" / "step_00000006.png").is_file()
    assert (out / "ckpt" / "latest").read_text().strip() == "step_00000006"
    est = json.loads((out / "jpeg.json").read_text())  # the real LR here: clean PNGs, no JPEG stage
    assert est["kind"] == "none" and est["n_total"] == 6 and est["qualities"] == []
    assert json.loads(header["jpeg"]) == est
    realism = json.loads((out / "degradation.json").read_text())
    assert realism["counts"]["real"] == 1 and {r["metric"] for r in realism["rows"]} >= {"noise", "blockiness"}
    split = json.loads((out / "split.json").read_text())
    assert len(split["held_out"]) == 1 and len(split["train"]) == 5  # val_fraction 0.2 of 6 images
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["optim"]["iters"] == 6 and saved["inputs"]["lr"] == str(tiny_lr.resolve())


class _StopAfter:
    """A StopFlag stand-in that "receives SIGTERM" during step `step` (polled once per step)."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def __bool__(self):
        self.calls += 1
        return self.calls >= self.step


def test_interrupt_then_resume_equals_an_uninterrupted_run(tiny_hr, tiny_lr, tmp_path, monkeypatch):
    full = train(dsgan_cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "a", run=cpu_run())
    monkeypatch.setattr(loop, "StopFlag", lambda: _StopAfter(3))
    with pytest.raises(Interrupted):
        train(dsgan_cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "b", run=cpu_run())
    assert (tmp_path / "b" / "ckpt" / "latest").read_text().strip() == "step_00000003"
    assert not (tmp_path / "b" / "generator.safetensors").exists()
    monkeypatch.undo()
    resumed = train(dsgan_cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "b", run=cpu_run())
    a, _ = ckpt.load_weights(full)
    b, _ = ckpt.load_weights(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    steps = [r.split(",")[0] for r in (tmp_path / "b" / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_changed_config_is_refused_unless_restart(tiny_hr, tiny_lr, tmp_path):
    out = tmp_path / "run"
    train(dsgan_cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=cpu_run())
    with pytest.raises(ConfigChangedError, match=r"optim\.lr.*--restart"):
        train(dsgan_cfg(**{"optim.lr": 5e-4}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=cpu_run())
    train(dsgan_cfg(**{"optim.lr": 5e-4}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=cpu_run(restart=True))
    assert json.loads((out / "config.json").read_text())["config"]["optim"]["lr"] == 5e-4


@pytest.mark.slow
def test_same_domain_needs_no_lr_folder(tiny_hr, tmp_path):
    train(
        dsgan_cfg(**{"data.same_domain": "true"}),
        hr_dir=tiny_hr,
        real_lr_dir=None,
        out_dir=tmp_path / "r",
        run=cpu_run(),
    )
    assert (tmp_path / "r" / "generator.safetensors").is_file()


def test_lpips_perceptual_loss_uses_resolved_weights(tiny_hr, tiny_lr, tmp_path, torch_home):
    # val_fraction 0: no end-of-run realism table, whose Inception rows would dominate the runtime
    c = dsgan_cfg(
        **{
            "loss.perceptual": "lpips-alex",
            "optim.iters": 2,
            "data.scale": 2,
            "data.hr_crop": 64,
            "data.val_fraction": 0.0,
        }
    )
    train(c, hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=cpu_run())
    row = (tmp_path / "r" / "log.csv").read_text().splitlines()[1].split(",")
    assert float(row[7]) > 0  # perceptual column


def test_missing_perceptual_weights_fail_before_anything_is_written(tiny_hr, tiny_lr, tmp_path, empty_torch_home):
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        train(
            dsgan_cfg(**{"loss.perceptual": "lpips-alex", "data.hr_crop": 128}),
            hr_dir=tiny_hr,
            real_lr_dir=tiny_lr,
            out_dir=tmp_path / "r",
            run=cpu_run(),
        )
    assert not (tmp_path / "r").exists()
