"""The pdm learner: kernel construction, the forward, training files, make-pairs, --method."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import make_folder
from srpipe.cli import main
from srpipe.config import RunOptions, build_config
from srpipe.degrade.config import PDM_PRESETS, PDMConfig
from srpipe.degrade.pairs import load_generator, make_pairs, pdm_degrade_image
from srpipe.degrade.pdm import KernelNet, PatchDiscriminator, PDMDegrader, hr_crop_for, lr_margin
from srpipe.engine import ckpt
from srpipe.errors import SrpipeError, UsageError
from srpipe.io.imageio import read_image
from srpipe.io.kernels import blur_down, gaussian_kernel, kernel_stats

TINY = {
    "data": {"hr_crop": 64, "val_fraction": 0.2},
    "kernel": {"hidden": 8, "z_dim": 2},
    "noise": {"features": 4, "layers": 2},
    "loss": {"d_features": 4, "d_layers": 2},
    "optim": {"batch": 2, "iters": 4, "lr": 1e-3},
}


def cfg(**sets) -> PDMConfig:
    return build_config(PDMConfig, preset=TINY, sets=[f"{k}={v}" for k, v in sets.items()])


def _perturb(net: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("form", ["softmax", "signed"])
def test_kernels_start_as_the_gaussian_then_stay_normalised_and_centred(form):
    net = KernelNet(size=20, z_dim=4, hidden=8, init_sigma=1.6, form=form)
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(net(z), gaussian_kernel(20, 1.6).expand(5, 20, 20), atol=1e-6)
    _perturb(net, 1)  # any weights: the construction, not the training, keeps these properties
    ks = net(z)
    assert not torch.allclose(ks[0], ks[1])  # a distribution of kernels, one per code
    assert torch.allclose(ks.sum((-1, -2)), torch.ones(5), atol=1e-5)
    for k in ks:
        assert kernel_stats(k)["centre"] == [pytest.approx(0, abs=1e-4), pytest.approx(0, abs=1e-4)]
    if form == "softmax":
        assert ks.min() >= 0
    else:
        assert ks.min() < 0  # free to sharpen


def test_sharpened_kernels_are_normalised_centred_and_sharpen():
    net = KernelNet(size=28, z_dim=4, hidden=8, init_sigma=1.6, form="sharpened", scale=4)
    _perturb(net, 2)  # any weights
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    ks = net(z)
    assert torch.allclose(ks.sum((-1, -2)), torch.ones(5), atol=1e-5)
    for k in ks:
        assert kernel_stats(k)["centre"] == [pytest.approx(0, abs=1e-4), pytest.approx(0, abs=1e-4)]
    assert (net.head(net.mlp(z))[:, 3] > 0).any() and ks.min() < 0  # a positive amount makes negative lobes


@pytest.mark.parametrize("sigma,amount,radius", [(1.2, 0.6, 1.0), (1.6, 1.5, 0.7), (1.6, -0.7, 1.2)])
def test_sharpened_kernel_is_the_gaussian_then_an_unsharp_mask_on_the_lr_grid(sigma, amount, radius):
    net = KernelNet(size=28, z_dim=4, hidden=8, init_sigma=sigma, form="sharpened", scale=4)
    with torch.no_grad():
        net.head.bias[3:] = torch.tensor([amount, math.log(radius)])
    k = net.centre_kernel().detach()
    # The same LR two ways: HR through the folded kernel, or HR through the Gaussian and then an
    # explicit unsharp mask on the LR. With these widths the folded kernel fits its window, so away
    # from the borders (the paddings differ there: the Gaussian's reach, 14 HR px, plus the mask's, 2
    # LR px) they agree to float32 rounding of ~800-tap sums of values in [0, 1].
    hr = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    lr = blur_down(hr, gaussian_kernel(28, sigma)[None], 4)
    t = torch.arange(-2, 3, dtype=torch.float32)
    g1 = torch.exp(-0.5 * (t / radius) ** 2)
    g = (g1[:, None] * g1 / g1.sum() ** 2)[None, None].expand(3, 1, 5, 5)
    expected = lr + amount * (lr - F.conv2d(F.pad(lr, (2, 2, 2, 2), mode="reflect"), g, groups=3))
    got = blur_down(hr, k[None], 4)
    assert torch.allclose(got[..., 8:-8, 8:-8], expected[..., 8:-8, 8:-8], atol=1e-5)


def test_sharpened_kernel_starts_as_the_gaussian_and_softens_below_zero():
    net = KernelNet(size=28, z_dim=4, hidden=8, init_sigma=1.6, form="sharpened", scale=4)
    assert torch.allclose(net.centre_kernel(), gaussian_kernel(28, 1.6), atol=1e-6)
    with torch.no_grad():
        net.head.bias[3] = -3.0  # clamped at -1: all of the LR blurred by g, no comb, no negative taps
    k = net.centre_kernel()
    assert k.min() >= 0 and kernel_stats(k)["width"] > kernel_stats(gaussian_kernel(28, 1.6))["width"] + 1
    assert build_config(PDMConfig, sets=["kernel.form=sharpened"]).kernel_size == 28  # room for the mask's reach


def test_degrader_shapes_and_training_crop_geometry():
    G = PDMDegrader(scale=4, kernel_size=20, z_dim=2, hidden=8, noise_features=4, noise_layers=2)
    hr = torch.rand(2, 3, 64, 48)
    lr, noise = G(hr)
    assert lr.shape == noise.shape == (2, 3, 16, 12)
    # a crop with the margin gives exactly the LR crop, with no padding used anywhere
    side = hr_crop_for(16, 4, 20, 2)
    lr, _ = G(torch.rand(2, 3, side, side), valid=True, trim=lr_margin(2))
    assert lr.shape == (2, 3, 16, 16)
    assert PatchDiscriminator(features=4, layers=2)(lr).shape == (2, 1, 4, 4)


def test_noise_is_bounded_per_pixel_and_starts_faint():
    G = PDMDegrader(scale=2, kernel_size=10, noise_features=4, noise_layers=2, max_level=0.05)
    lr = torch.rand(1, 3, 64, 64)
    _, n = G.add_noise(lr)
    # one 8-bit level of white noise: 12288 draws put the sample std within 0.7% (1 sigma) of it
    assert abs(n.std().item() * 255 - 1) < 0.05
    _perturb(G.noise, 3)
    _, n = G.add_noise(lr)
    assert n.abs().max() <= 0.05 + 1e-7
    assert n[0, 0].flatten().unique().numel() > 1000  # per-pixel, not one value per image


def test_noise_has_zero_mean_whatever_the_weights():
    # n(lr, -maps) = -n(lr, maps) for any weights, so E[n | lr] = 0: the noise cannot shift colours
    # or tones (a free-form noise net drifted 6-9 levels darker on the benchmark).
    G = PDMDegrader(scale=2, kernel_size=10, noise_features=4, noise_layers=2, max_level=0.05)
    _perturb(G.noise, 3)
    with torch.no_grad():
        for p in G.noise.parameters():
            p.add_(0.5)  # biases and all: still odd in the maps
    lr, maps = torch.rand(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    plus, minus = G.noise(lr, maps), G.noise(lr, -maps)
    assert plus.abs().mean() > 1e-3
    torch.testing.assert_close(minus, -plus, rtol=0, atol=1e-7)  # one sign flip per product: exact


def test_config_refuses_off_grid_kernel_and_same_domain():
    with pytest.raises(UsageError, match="parity"):
        cfg(**{"kernel.size": 21})
    with pytest.raises(UsageError, match="same_domain"):
        cfg(**{"data.same_domain": "true"})
    assert build_config(PDMConfig, preset=PDM_PRESETS["tiny"]).kernel_size == 20


@pytest.fixture
def pdm_run(tmp_path):
    hr = make_folder(tmp_path / "hr", 4, (96, 96), seed=1)
    lr = make_folder(tmp_path / "lr", 5, (40, 40), seed=2)
    from srpipe.degrade.pdm_train import train

    train(cfg(), hr_dir=hr, real_lr_dir=lr, out_dir=tmp_path / "run", run=RunOptions(device="cpu", log_every=1))
    return tmp_path / "run"


def test_training_writes_what_was_learned(pdm_run):
    header = ckpt.read_header(pdm_run / "generator.safetensors")
    assert header["arch"] == "PDMDegrader" and header["method"] == "pdm"
    mean = np.load(pdm_run / "kernel_mean.npy")
    assert mean.shape == (20, 20) and mean.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.load(pdm_run / "kernel_draws.npy").shape == (4, 20, 20)
    learned = json.loads((pdm_run / "kernel.json").read_text())
    assert learned["method"] == "pdm" and learned["stats"]["width"] > 0 and "noise_sigma" in learned
    pic, _ = read_image(pdm_run / "kernel.png")
    assert pic.shape[1] == 20 * 8 and pic.shape[2] == 5 * 20 * 8 + 4 * 4  # mean + 4 draws, 8x, gaps of 4
    rows = (pdm_run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 4


def test_a_sharpened_run_reports_its_unsharp_mask(tmp_path):
    from srpipe.degrade.pdm_train import describe, train

    hr = make_folder(tmp_path / "hr", 4, (112, 112), seed=1)  # the 28-tap kernel needs a wider HR margin
    lr = make_folder(tmp_path / "lr", 5, (40, 40), seed=2)
    train(
        cfg(**{"kernel.form": "sharpened"}),
        hr_dir=hr,
        real_lr_dir=lr,
        out_dir=tmp_path / "run",
        run=RunOptions(device="cpu"),
    )
    learned = json.loads((tmp_path / "run" / "kernel.json").read_text())
    assert learned["form"] == "sharpened" and np.load(tmp_path / "run" / "kernel_mean.npy").shape == (28, 28)
    # 4 Adam steps of lr 1e-3 move each of the head's bias and 8 weights (times activations of order
    # 1) by at most 0.004: the amount, starting at 0, and the radius, at 1 LR px, stay within 0.05
    unsharp = learned["unsharp"]
    assert unsharp["amount"] == pytest.approx(0, abs=0.05) and unsharp["radius"] == pytest.approx(1, abs=0.05)
    without = {k: v for k, v in learned.items() if k != "unsharp"}  # a run of another form
    line = f"unsharp mask {unsharp['amount']:+.2f} at {unsharp['radius']:.2f} LR px"
    assert line in describe(learned) and "unsharp" not in describe(without)


def test_training_resumes_after_an_interrupted_run(tmp_path, pdm_run):
    from srpipe.degrade.pdm_train import train

    hr, lr = tmp_path / "hr", tmp_path / "lr"
    before = ckpt.load_weights(pdm_run / "generator.safetensors")[0]
    train(cfg(**{"optim.iters": 6}), hr_dir=hr, real_lr_dir=lr, out_dir=tmp_path / "b", run=RunOptions(device="cpu"))
    # same config, same run folder: nothing to do, weights unchanged
    train(cfg(), hr_dir=hr, real_lr_dir=lr, out_dir=pdm_run, run=RunOptions(device="cpu"))
    after = ckpt.load_weights(pdm_run / "generator.safetensors")[0]
    assert all(torch.equal(before[k], after[k]) for k in before)


def _trained_model(tmp_path, seed=5) -> PDMDegrader:
    G = PDMDegrader(scale=4, kernel_size=20, z_dim=2, hidden=8, noise_features=4, noise_layers=2).eval()
    _perturb(G, seed)
    return G


def test_tiled_output_equals_the_whole_image(tmp_path):
    G = _trained_model(tmp_path)
    hr = torch.rand(3, 96, 80, generator=torch.Generator().manual_seed(0))
    whole = pdm_degrade_image(G, hr, tile=4096, device=torch.device("cpu"), autocast=None, batch=1, seed=7)
    tiled = pdm_degrade_image(G, hr, tile=8, device=torch.device("cpu"), autocast=None, batch=3, seed=7)
    # the same float32 convolutions on the same pixels, in another grouping of the batch
    assert torch.allclose(whole, tiled, atol=1e-6)
    other = pdm_degrade_image(G, hr, tile=4096, device=torch.device("cpu"), autocast=None, batch=1, seed=8)
    assert not torch.allclose(whole, other)


def _save(G: PDMDegrader, path, scale=4):
    args = {"scale": scale, "kernel_size": 20, "z_dim": 2, "hidden": 8, "noise_features": 4, "noise_layers": 2}
    ckpt.save_weights(path, G.state_dict(), arch="PDMDegrader", args=args, meta={"scale": scale, "method": "pdm"})
    return path


def test_make_pairs_is_reproducible_by_name_and_seed(tmp_path):
    model = _save(_trained_model(tmp_path), tmp_path / "g.safetensors")
    hr = make_folder(tmp_path / "hr", 3, (64, 48), seed=4)
    m = make_pairs(model=model, hr_dir=hr, out_dir=tmp_path / "a", device="cpu", jpeg="off")
    assert m["method"] == "pdm" and m["seed"] == 0
    # the same image alone (another order, another neighbour set) gets the same LR
    solo = make_folder(tmp_path / "solo", 3, (64, 48), seed=4)
    for p in list(solo.iterdir())[:2]:
        p.unlink()
    make_pairs(model=model, hr_dir=solo, out_dir=tmp_path / "b", device="cpu", jpeg="off")
    name = next(iter(solo.iterdir())).stem
    assert (tmp_path / "a" / "lr" / f"{name}.png").read_bytes() == (tmp_path / "b" / "lr" / f"{name}.png").read_bytes()
    make_pairs(model=model, hr_dir=hr, out_dir=tmp_path / "c", device="cpu", jpeg="off", seed=1)
    a, _ = read_image(tmp_path / "a" / "lr" / f"{name}.png")
    c, _ = read_image(tmp_path / "c" / "lr" / f"{name}.png")
    assert not torch.equal(a, c)


def test_a_dsgan_model_is_refused_where_pdm_is_required(tmp_path):
    from srpipe.degrade.archs import DSGANGenerator

    args = {"features": 4, "res_blocks": 1}
    path = tmp_path / "dsgan.safetensors"
    ckpt.save_weights(path, DSGANGenerator(**args).state_dict(), arch="DSGANGenerator", args=args, meta={"scale": 4})
    with pytest.raises(SrpipeError, match="is a dsgan model, but a pdm model is required"):
        load_generator(path, require="pdm")
    G, _, _ = load_generator(_save(_trained_model(tmp_path), tmp_path / "p.safetensors"), require="pdm")
    assert isinstance(G, PDMDegrader)


def _cli(argv) -> int:
    with pytest.raises(SystemExit) as ei:
        main(argv)
    return ei.value.code


def test_cli_method_choice_and_errors(tmp_path, capsys):
    hr = make_folder(tmp_path / "hr", 2, (96, 96), seed=1)
    lr = make_folder(tmp_path / "lr", 3, (40, 40), seed=2)
    common = ["--hr", str(hr), "--out", str(tmp_path / "o")]
    assert _cli(["degrade-train", "--method", "kernelgan", "--lr", str(lr), *common]) == 2
    assert "'kernelgan' is not one of 'dsgan', 'pdm'" in capsys.readouterr().err
    assert _cli(["degrade-train", "--method", "pdm", "--same-domain", *common]) == 2
    assert "--same-domain is a DSGAN mode" in capsys.readouterr().err
    sets = [a for k, v in TINY.items() for kk, vv in v.items() for a in ("--set", f"{k}.{kk}={json.dumps(vv)}")]
    argv = ["degrade-train", "--method", "pdm", "--hr", str(hr), "--lr", str(lr), "--out", str(tmp_path / "run")]
    assert _cli([*argv, "--device", "cpu", *sets]) == 0
    out = capsys.readouterr().out
    assert "model (pdm)" in out and "learned kernel: width" in out
    assert ckpt.read_header(tmp_path / "run" / "generator.safetensors")["arch"] == "PDMDegrader"


def _power_law_photos(folder, n: int, side: int, seed: int, kernel=None) -> None:
    """`n` random-phase colour images with a 1/f amplitude spectrum (the average spectrum of natural
    photos, Field 1987), written as PNGs; blurred and downscaled x4 by `kernel` when one is given."""
    from srpipe.io.imageio import write_png
    from srpipe.io.kernels import blur_down

    rng = np.random.default_rng(seed)
    f = np.sqrt(np.fft.fftfreq(side)[:, None] ** 2 + np.fft.fftfreq(side)[None] ** 2)
    amplitude = 1 / np.maximum(f, 1 / side)
    for i in range(n):
        phases = [np.exp(2j * np.pi * rng.random((side, side))) for _ in range(4)]
        fields = [np.real(np.fft.ifft2(amplitude * p)) for p in phases]
        img = np.stack([fields[0] + 0.3 * c for c in fields[1:]])  # colour-correlated, like photos
        img = torch.from_numpy((img - img.mean()) / (4 * img.std()) + 0.5).float().clamp(0, 1)
        write_png(folder / f"{i}.png", img if kernel is None else blur_down(img[None], kernel, 4)[0].clamp(0, 1))


@pytest.mark.slow
def test_a_known_gaussian_kernel_is_recovered(tmp_path):
    """Real LR made with a known kernel from other photos of the same statistics: the tiny preset's
    losses, on small nets, find its width within 15% (from a start 33% too narrow). Measured over four
    pairs of photo sets: -4% to +6%; with 8 photos a set, up to +13%."""
    from srpipe.degrade.pdm_train import train
    from srpipe.io.kernels import kernel_error

    true = gaussian_kernel(20, 2.4)
    _power_law_photos(tmp_path / "hr", 16, 96, seed=1)
    _power_law_photos(tmp_path / "lr", 16, 96, seed=2, kernel=true)
    tiny = PDM_PRESETS["tiny"]  # its kernel form and losses; smaller nets and crops, a higher lr
    small = {
        "data": {"hr_crop": 64, "val_fraction": 0.0},
        "kernel": {**tiny["kernel"], "hidden": 8, "z_dim": 2},
        "noise": {"features": 4, "layers": 1},
        "loss": {**tiny["loss"], "d_features": 8, "d_layers": 2},
        "optim": {"batch": 8, "iters": 150, "lr": 1e-2},
        "jpeg": {"in_loop": False},
    }
    config = build_config(PDMConfig, preset=small)
    train(
        config,
        hr_dir=tmp_path / "hr",
        real_lr_dir=tmp_path / "lr",
        out_dir=tmp_path / "run",
        run=RunOptions(device="cpu"),
    )
    learned = torch.from_numpy(np.load(tmp_path / "run" / "kernel_mean.npy"))
    assert kernel_stats(learned)["width"] == pytest.approx(kernel_stats(true)["width"], rel=0.15)
    assert kernel_error(learned, true) < 0.5 * kernel_error(gaussian_kernel(20, 1.6), true)
