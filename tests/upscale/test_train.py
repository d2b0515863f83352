"""sr-train: both phases, EMA, resume (bit-exact), config refusal, --init, schedules."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from srpipe.engine import ckpt, loop
from srpipe.config import RunOptions, build_config
from srpipe.engine.runfolder import ConfigChangedError
from srpipe.engine.signals import Interrupted
from srpipe.errors import SrpipeError
from srpipe.upscale import interop
from srpipe.upscale.archs import RRDBNet
from srpipe.upscale.config import PRESETS, UpscaleConfig
from srpipe.upscale.train import ema_update, lr_at, train

# Smaller than the tiny preset: a few steps of each phase in well under a second each.
TEST_SETS = [
    "data.hr_patch=32",
    "model.num_feat=8",
    "model.num_block=1",
    "model.num_grow_ch=8",
    "model.d_features=8",
    "batch=2",
    "psnr.iters=4",
    "gan.iters=4",
    "data.val_fraction=0.25",
]


def config(*extra: str) -> UpscaleConfig:
    return build_config(UpscaleConfig, preset=PRESETS["tiny"], sets=TEST_SETS + list(extra))


def run_opts(**kw) -> RunOptions:
    return RunOptions(**{"device": "cpu", "ckpt_every": 2, "log_every": 1, **kw})


@pytest.fixture
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "pairs"
    for d in ("hr", "lr"):
        (root / d).mkdir(parents=True)
    for i in range(4):
        base = rng.random((8, 8, 3)).astype(np.float32)
        hr = (cv2.resize(base, (48, 48), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).round().astype(np.uint8)
        cv2.imwrite(str(root / "hr" / f"im{i}.png"), hr)
        cv2.imwrite(str(root / "lr" / f"im{i}.png"), cv2.resize(hr, (12, 12), interpolation=cv2.INTER_AREA))
    return root


@pytest.fixture(autouse=True)
def _cache_and_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    # These nets are tiny: one thread is faster than two (thread sync dominates), and far faster on
    # a CI runner shared with other jobs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_lr_schedule_halves_at_milestones():
    assert [lr_at(s, 1.0, (2, 4), 0.5) for s in (1, 2, 3, 4, 5)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_ema_update_is_one_line_of_maths():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update(a, b, 0.9)
    assert torch.allclose(a.weight, 0.9 * before + 0.1 * b.weight)


def test_both_phases_write_ema_weights_logs_and_samples(tmp_path, pairs):
    out = tmp_path / "run"
    result = train(config(), pairs=pairs, out_dir=out, run=run_opts(), val_every=2)
    assert set(result) == {"psnr", "gan"}
    for f in (
        "config.json",
        "split.json",
        "best.json",
        "psnr.safetensors",
        "gan.safetensors",
        "log_psnr.csv",
        "log_gan.csv",
    ):
        assert (out / f).is_file(), f
    assert json.loads((out / "config.json").read_text())["config"]["psnr"]["iters"] == 4
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "gan_00000002.png",
        "gan_00000004.png",
        "psnr_00000002.png",
        "psnr_00000004.png",
    ]
    split = json.loads((out / "split.json").read_text())
    assert len(split["held_out"]) == 1 and len(split["train"]) == 3

    psnr_log, gan_log = rows(out / "log_psnr.csv"), rows(out / "log_gan.csv")
    assert [r["step"] for r in psnr_log] == ["1", "2", "3", "4"]
    assert all(np.isfinite(float(r["l_pix"])) for r in psnr_log)
    assert all(np.isfinite(float(r[k])) for r in gan_log for k in ("l_pix", "l_adv", "d_loss", "d_real", "d_fake"))
    assert psnr_log[1]["val_psnr_y"] and float(psnr_log[1]["val_psnr_y"]) > 0

    # the saved model is the EMA of G, not G itself; each phase changed the weights
    w_psnr, header = ckpt.load_weights(out / "psnr.safetensors")
    assert header["arch"] == "RRDBNet" and header["phase"] == "psnr"
    nets, state = ckpt.load_checkpoint(out / "ckpt" / "psnr" / "step_00000004")
    assert state["step"] == 4
    for k in w_psnr:
        assert torch.equal(w_psnr[k], nets["ema"][k])
    assert any(not torch.equal(nets["ema"][k], nets["generator"][k]) for k in w_psnr)
    torch.manual_seed(0)
    fresh = RRDBNet(**config().generator_args()).state_dict()
    assert any(not torch.equal(w_psnr[k], fresh[k]) for k in w_psnr)
    w_gan, _ = ckpt.load_weights(out / "gan.safetensors")
    assert any(not torch.equal(w_psnr[k], w_gan[k]) for k in w_psnr)
    best = json.loads((out / "best.json").read_text())
    assert best["psnr"]["metric"] == "val_psnr_y" and best["psnr"]["step"] in (2, 4)

    # a second run finds both phases complete and trains nothing
    again = train(config(), pairs=pairs, out_dir=out, run=run_opts())
    assert again == result
    assert rows(out / "log_gan.csv") == gan_log


class _StopAfter:
    """A StopFlag stand-in: the first `n` polls (one per step) see no signal, the next one does."""

    def __init__(self, n):
        self.n = n

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __bool__(self):
        self.n -= 1
        return self.n < 0


def test_interrupt_checkpoints_and_resume_is_bit_exact(tmp_path, pairs, monkeypatch):
    cfg = config("psnr.iters=3", "gan.iters=5")
    train(cfg, pairs=pairs, out_dir=tmp_path / "straight", run=run_opts(ckpt_every=100))

    monkeypatch.setattr(loop, "StopFlag", _StopAfter(3 + 1))  # 3 psnr steps run through, gan stops at step 2
    with pytest.raises(Interrupted, match="gan phase at step 2"):
        train(cfg, pairs=pairs, out_dir=tmp_path / "cut", run=run_opts(ckpt_every=100))
    assert ckpt.latest_checkpoint(tmp_path / "cut" / "ckpt" / "gan").name == "step_00000002"
    assert not (tmp_path / "cut" / "gan.safetensors").exists()
    monkeypatch.undo()
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    train(cfg, pairs=pairs, out_dir=tmp_path / "cut", run=run_opts(ckpt_every=100))

    assert [r["step"] for r in rows(tmp_path / "cut" / "log_gan.csv")] == ["1", "2", "3", "4", "5"]
    a, _ = ckpt.load_weights(tmp_path / "straight" / "gan.safetensors")
    b, _ = ckpt.load_weights(tmp_path / "cut" / "gan.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_changed_config_is_refused_unless_restart(tmp_path, pairs):
    out = tmp_path / "run"
    train(config(), pairs=pairs, out_dir=out, run=run_opts(), phase="psnr")
    with pytest.raises(ConfigChangedError, match=r"psnr.lr: 0.001 -> 0.002"):
        train(config("psnr.lr=2e-3"), pairs=pairs, out_dir=out, run=run_opts(), phase="psnr")
    train(config("psnr.lr=2e-3"), pairs=pairs, out_dir=out, run=run_opts(restart=True), phase="psnr")
    assert json.loads((out / "config.json").read_text())["config"]["psnr"]["lr"] == 2e-3


def test_gan_phase_needs_a_psnr_model_or_init(tmp_path, pairs):
    with pytest.raises(SrpipeError, match="run --phase psnr .* or pass --init FILE"):
        train(config(), pairs=pairs, out_dir=tmp_path / "run", run=run_opts(), phase="gan")


def test_init_from_an_old_layout_pth(tmp_path, pairs):
    cfg = config("gan.lr_g=0", "gan.iters=2")  # lr 0: G (and so its EMA) must stay the init weights
    torch.manual_seed(5)
    start = RRDBNet(**cfg.generator_args()).state_dict()
    old = {
        k.replace("conv_body", "trunk_conv").replace("conv_hr", "HRconv").replace("conv_up", "upconv"): v
        for k, v in start.items()
    }
    old = {(f"RRDB_trunk.{k[5:].replace('rdb', 'RDB')}" if k.startswith("body.") else k): v for k, v in old.items()}
    torch.save({"params_ema": old}, tmp_path / "published.pth")
    out = train(
        cfg, pairs=pairs, out_dir=tmp_path / "run", run=run_opts(), phase="gan", init=tmp_path / "published.pth"
    )
    w, _ = ckpt.load_weights(out["gan"])
    for k in start:  # (EMA arithmetic 0.9 a + 0.1 a rounds in the last bit)
        assert torch.allclose(w[k], start[k], rtol=1e-6, atol=1e-7), k
    assert json.loads((tmp_path / "run" / "config.json").read_text())["inputs"]["init"]["sha256"]

    wrong = RRDBNet(scale=4, num_feat=16, num_block=1, num_grow_ch=8)
    interop.save_generator(tmp_path / "wide.safetensors", wrong.state_dict(), {**cfg.generator_args(), "num_feat": 16})
    with pytest.raises(SrpipeError, match="num_feat 16 \\(config: 8\\)"):
        train(
            cfg, pairs=pairs, out_dir=tmp_path / "run2", run=run_opts(), phase="gan", init=tmp_path / "wide.safetensors"
        )


def test_gan_phase_with_perceptual_frequency_separation_and_lpips(tmp_path, pairs, torch_home):
    cfg = config("gan.perceptual=vgg19", "fs.enabled=true", "fs.kernel=5", "psnr.iters=1", "gan.iters=2")
    train(cfg, pairs=pairs, out_dir=tmp_path / "run", run=run_opts(), val_every=1)
    log = rows(tmp_path / "run" / "log_gan.csv")
    for k in ("l_percep", "l_pix", "l_pix_full", "l_adv"):
        assert all(np.isfinite(float(r[k])) for r in log), k
    assert float(log[0]["l_percep"]) > 0
    # AlexNet weights are present (stand-in), so GAN validation adds LPIPS and picks the best step by it
    assert all(float(r["val_lpips"]) > 0 for r in log)
    assert json.loads((tmp_path / "run" / "best.json").read_text())["gan"]["metric"] == "val_lpips"
    assert rows(tmp_path / "run" / "log_psnr.csv")[0]["val_lpips"] == ""  # PSNR phase: PSNR/SSIM only


@pytest.mark.parametrize("scale", [2, 3])
def test_x2_and_x3_pairs_train_a_network_of_that_scale(tmp_path, pairs, scale):
    # pairs from the same 48 px HR: 48 -> 24 (x2) or 16 (x3)
    root = tmp_path / "pairs2"
    (root / "lr").mkdir(parents=True)
    (root / "hr").symlink_to(pairs / "hr")
    side = 48 // scale
    for p in (pairs / "hr").iterdir():
        cv2.imwrite(
            str(root / "lr" / p.name), cv2.resize(cv2.imread(str(p)), (side, side), interpolation=cv2.INTER_AREA)
        )
    out = train(
        config(f"data.scale={scale}", "data.hr_patch=36", "psnr.iters=2", "gan.iters=0"),
        pairs=root,
        out_dir=tmp_path / f"x{scale}",
        run=run_opts(),
        phase="psnr",
    )
    net, args, _ = interop.load_generator(out["psnr"])
    assert args["scale"] == scale and net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)
