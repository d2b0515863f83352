"""Mixed precision and memory format (srpipe.engine.accel): the bf16 autocast path of both stages' steps
runs on the CPU, with networks in bf16 and losses, weights and optimizer state in fp32."""

from __future__ import annotations

import math

import pytest
import torch

from srpipe.engine import accel
from srpipe.config import RunOptions, build_config
from srpipe.degrade import train as dsgan
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.config import DegradeConfig
from srpipe.errors import SrpipeError
from srpipe.upscale import train as esrgan
from srpipe.upscale.archs import PatchDiscriminator, RRDBNet
from srpipe.upscale.config import PRESETS, UpscaleConfig
from srpipe.upscale.losses import PerceptualLoss

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny networks: thread synchronisation costs more than it saves, more so on a shared CI runner
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def bf16_compute(channels_last: bool = True) -> accel.ComputeSettings:
    return accel.ComputeSettings.resolve(
        RunOptions(precision="bf16", channels_last="on" if channels_last else "off"), CPU
    )


def conv_output_dtypes(net: torch.nn.Module) -> set:
    seen = set()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
    return seen


def assert_fp32_state(net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    assert all(p.dtype == torch.float32 for p in net.parameters())
    for s in opt.state.values():
        assert s["exp_avg"].dtype == torch.float32 and s["exp_avg_sq"].dtype == torch.float32


def test_resolve_defaults_and_refusals():
    cpu = accel.ComputeSettings.resolve(RunOptions(), CPU)
    assert cpu.autocast is None and not cpu.channels_last and not cpu.compile
    assert cpu.describe() == "fp32"
    s = bf16_compute()
    assert s.autocast is torch.bfloat16 and s.channels_last and s.describe() == "bf16 autocast, channels-last"
    # the values are checked when the options are made, by the config validator
    with pytest.raises(SrpipeError, match="run.precision: 'fp16' is not one of 'auto', 'bf16', 'fp32'"):
        RunOptions(precision="fp16")
    with pytest.raises(SrpipeError, match="run.channels_last: 'yes' is not one of 'auto', 'on', 'off'"):
        RunOptions(channels_last="yes")
    with pytest.raises(SrpipeError, match="run.log_every: expected an integer"):
        RunOptions(log_every="10")
    net = s.prepare(torch.nn.Conv2d(3, 4, 3))
    assert net.weight.is_contiguous(memory_format=torch.channels_last)
    assert accel.adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99), device=CPU).param_groups[0]["fused"]


def test_dsgan_steps_run_under_cpu_bf16_autocast():
    cfg = build_config(
        DegradeConfig,
        sets=[
            "model.features=8",
            "model.res_blocks=1",
            "model.d_features=8",
            "loss.perceptual=none",
            "data.hr_crop=32",
        ],
    )
    compute = bf16_compute()
    G, D = compute.prepare(DSGANGenerator(features=8, res_blocks=1)), compute.prepare(DSGANDiscriminator(features=8))
    g_dtypes, d_dtypes = conv_output_dtypes(G), conv_output_dtypes(D)
    opt_g = accel.adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999), device=CPU)
    opt_d = accel.adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999), device=CPU)
    before = [p.detach().clone() for p in G.parameters()]
    guard = accel.StepGuard(CPU)
    x, real = compute.input(torch.rand(2, 3, 8, 8)), compute.input(torch.rand(2, 3, 8, 8))
    for _ in range(2):
        guard.begin(D)
        d = dsgan.d_step(G, D, opt_d, x, real, cfg, compute=compute, guard=guard)
        g = dsgan.g_step(G, D, opt_g, x, real, None, cfg, compute=compute, guard=guard)
        assert float(guard.end()) == 0
    assert g_dtypes == {torch.bfloat16} and d_dtypes == {torch.bfloat16}
    for v in {**d, **g}.values():
        assert v.dtype == torch.float32 and torch.isfinite(v)
    assert_fp32_state(G, opt_g)
    assert_fp32_state(D, opt_d)
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))


def test_esrgan_steps_with_vgg_perceptual_run_under_cpu_bf16_autocast(torch_home):
    from srpipe.engine.weights import vgg19_features

    cfg = build_config(UpscaleConfig, preset=PRESETS["tiny"], sets=["data.hr_patch=32"])
    compute = bf16_compute()
    G = compute.prepare(RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=8))
    D = compute.prepare(PatchDiscriminator(num_feat=8, n_layers=3))
    vgg = compute.prepare(PerceptualLoss(vgg19_features()))
    g_dtypes, v_dtypes = conv_output_dtypes(G), conv_output_dtypes(vgg)
    ema = esrgan.copy.deepcopy(G)
    opt_g = accel.adam(G.parameters(), lr=1e-3, betas=(0.9, 0.99), device=CPU)
    opt_d = accel.adam(D.parameters(), lr=1e-3, betas=(0.9, 0.99), device=CPU)
    guard = accel.StepGuard(CPU)
    lr, hr = compute.input(torch.rand(2, 3, 8, 8)), compute.input(torch.rand(2, 3, 32, 32))
    # PSNR phase (no D), then the GAN phase with perceptual and RaGAN
    out, _ = esrgan.g_step(G, None, opt_g, lr, hr, cfg, compute=compute, guard=guard)
    assert out["l_pix"].dtype == torch.float32 and torch.isfinite(out["l_pix"])
    guard.begin(D)
    out, sr = esrgan.g_step(G, D, opt_g, lr, hr, cfg, perceptual=vgg, compute=compute, guard=guard)
    out.update(esrgan.d_step(D, opt_d, sr, hr, compute=compute, guard=guard))
    esrgan.ema_update(ema, G, 0.9)
    assert float(guard.end()) == 0
    assert sr.dtype == torch.float32
    assert g_dtypes == {torch.bfloat16} and torch.bfloat16 in v_dtypes
    for k in ("l_pix", "l_percep", "l_adv", "g_total", "d_loss"):
        assert out[k].dtype == torch.float32 and torch.isfinite(out[k]) and float(out[k]) > 0, k
    assert_fp32_state(G, opt_g)
    assert_fp32_state(D, opt_d)
    assert all(p.dtype == torch.float32 for p in ema.parameters())


def test_sr_train_end_to_end_in_bf16_channels_last(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from srpipe.engine import ckpt

    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for d in ("hr", "lr"):
        (root / d).mkdir(parents=True)
    for i in range(2):
        hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "hr" / f"im{i}.png"), hr)
        cv2.imwrite(str(root / "lr" / f"im{i}.png"), cv2.resize(hr, (12, 12), interpolation=cv2.INTER_AREA))
    cfg = build_config(
        UpscaleConfig,
        preset=PRESETS["tiny"],
        sets=[
            "data.hr_patch=32",
            "model.num_feat=8",
            "model.num_block=1",
            "model.num_grow_ch=8",
            "model.d_features=8",
            "batch=2",
            "psnr.iters=2",
            "gan.iters=1",
            "data.val_fraction=0",
        ],
    )
    run = RunOptions(device="cpu", precision="bf16", channels_last="on", log_every=1)
    result = esrgan.train(cfg, pairs=root, out_dir=tmp_path / "run", run=run)
    state, _ = ckpt.load_weights(result["gan"])
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state.values())
    log = (tmp_path / "run" / "log_gan.csv").read_text().splitlines()
    assert log[0].endswith(",skipped") and log[-1].split(",")[0] == "1"


def test_tiles_with_non_finite_output_are_rerun_by_the_fallback():
    from srpipe.io.tiling import auto_batch, tiled_apply

    img = torch.rand(3, 20, 20)
    calls = []

    def flaky(x):  # "fp16 overflow" in the batch that holds the top-left tile
        calls.append(x.shape[0])
        y = x * 2
        if len(calls) == 1:
            y[0] = math.nan
        return y

    out = tiled_apply(img, flaky, tile=8, pad=2, batch=4, blend=True, channels_last=True, fallback=lambda x: x * 2)
    assert torch.allclose(out, img * 2, atol=1e-6)
    calls.clear()
    assert torch.isnan(
        tiled_apply(img, flaky, tile=8, pad=2, batch=4)
    ).any()  # without a fallback the NaN stays: the check above is not vacuous
    assert auto_batch("cpu", 512) == 1


def test_make_pairs_in_bf16_on_the_cpu_is_close_to_fp32(tmp_path):
    from tests.helpers import make_folder
    from srpipe.engine import ckpt
    from srpipe.degrade.pairs import make_pairs
    from srpipe.io.imageio import read_image

    torch.manual_seed(3)
    g = tmp_path / "g.safetensors"
    ckpt.save_weights(
        g,
        DSGANGenerator(features=8, res_blocks=2).state_dict(),
        arch="DSGANGenerator",
        args={"features": 8, "res_blocks": 2},
        meta={"scale": 4},
    )
    hr = make_folder(tmp_path / "hr", 1, (96, 64))
    make_pairs(model=g, hr_dir=hr, out_dir=tmp_path / "a", device="cpu", tile=8, batch=3, precision="bf16")
    make_pairs(model=g, hr_dir=hr, out_dir=tmp_path / "b", device="cpu", tile=8)
    a, _ = read_image(tmp_path / "a" / "lr" / "img_00.png")
    b, _ = read_image(tmp_path / "b" / "lr" / "img_00.png")
    assert a.shape == b.shape == (3, 16, 24) and (a - b).abs().max() <= 3 / 255
    with pytest.raises(SrpipeError, match="fp16 needs a GPU"):
        make_pairs(model=g, hr_dir=hr, out_dir=tmp_path / "c", device="cpu", precision="fp16")
