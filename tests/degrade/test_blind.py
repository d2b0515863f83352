"""Real-ESRGAN's blind degradation: the published ranges, kernel families, determinism, the writer, the CLI."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from tests.helpers import make_folder
from srpipe.config import to_dict
from srpipe.degrade import blind_kernels as bk
from srpipe.degrade.blind import (
    RESIZE_MODES,
    BlindConfig,
    apply_blind,
    blind_degrade,
    blind_rng,
    make_blind_pairs,
    sample_blind,
)
from srpipe.errors import SrpipeError, UsageError
from srpipe.io.imageio import read_image

CFG = BlindConfig()
N_DRAWS = 3000


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(12345)
    return [sample_blind(rng, CFG) for _ in range(N_DRAWS)]


def within(v: float, lo_hi) -> bool:
    return lo_hi[0] <= v <= lo_hi[1]


def assert_frequency(count: int, n: int, p: float) -> None:
    """Binomial count within 4.5 standard deviations of n p (a false alarm about once in 150000 checks)."""
    tol = 4.5 * math.sqrt(n * p * (1 - p)) + 1
    assert abs(count - n * p) <= tol, (count, n, p)


def check_kernel_draw(k: bk.KernelDraw, *, sigma, betag, betap, sinc_cutoff) -> None:
    assert k.size in CFG.kernel_sizes
    if k.family == bk.SINC:
        assert within(k.cutoff, sinc_cutoff(k.size))
        return
    assert k.family in bk.FAMILIES
    assert within(k.sigma_x, sigma) and within(k.sigma_y, sigma)
    if k.family in ("iso", "generalized_iso", "plateau_iso"):
        assert k.sigma_x == k.sigma_y and k.theta == 0
    else:
        assert within(k.theta, CFG.rotation_range)
    if k.family.startswith("generalized"):
        assert within(k.beta, betag)
    elif k.family.startswith("plateau"):
        assert within(k.beta, betap)
    else:
        assert k.beta == 1


def stage_sinc_cutoff(size: int):
    return CFG.sinc_cutoff_small if size < 13 else CFG.sinc_cutoff_large


def test_every_drawn_parameter_lies_in_the_published_ranges(draws):
    for d in draws:
        f, s = d.first, d.second
        check_kernel_draw(f.kernel, sigma=(0.2, 3), betag=(0.5, 4), betap=(1, 2), sinc_cutoff=stage_sinc_cutoff)
        if s.kernel is not None:
            check_kernel_draw(s.kernel, sigma=(0.2, 1.5), betag=(0.5, 4), betap=(1, 2), sinc_cutoff=stage_sinc_cutoff)
        for st, (lo, hi), noise, poisson in (
            (f, (0.15, 1.5), (1, 30), (0.05, 3)),
            (s, (0.3, 1.2), (1, 25), (0.05, 2.5)),
        ):
            scale = {"up": (1, hi), "down": (lo, 1), "keep": (1, 1)}[st.resize]
            assert within(st.resize_scale, scale)
            assert st.resize_mode in RESIZE_MODES
            assert within(st.noise_level, noise if st.noise == "gaussian" else poisson)
            assert 30 <= st.jpeg <= 95 and isinstance(st.jpeg, int)
        if d.final_sinc is not None:
            assert d.final_sinc.family == bk.SINC and d.final_sinc.size in CFG.kernel_sizes
            assert within(d.final_sinc.cutoff, (math.pi / 3, math.pi))
        assert d.final_mode in RESIZE_MODES
    # the JPEG range's ends are reachable (integer qualities, inclusive)
    qualities = {d.first.jpeg for d in draws} | {d.second.jpeg for d in draws}
    assert min(qualities) == 30 and max(qualities) == 95


def test_family_and_branch_frequencies_match_the_recipe(draws):
    n = len(draws)
    firsts = Counter(d.first.kernel.family for d in draws)
    assert_frequency(firsts[bk.SINC], n, 0.1)
    for fam, p in zip(bk.FAMILIES, CFG.kernel_prob):
        assert_frequency(firsts[fam], n, 0.9 * p)
    seconds = Counter(d.second.kernel.family if d.second.kernel else None for d in draws)
    assert_frequency(seconds[None], n, 0.2)  # second_blur_prob 0.8
    assert_frequency(seconds[bk.SINC], n, 0.8 * 0.1)
    assert_frequency(sum(d.final_sinc is not None for d in draws), n, 0.8)
    assert_frequency(sum(d.jpeg_last for d in draws), n, 0.5)
    for attr, up_down_keep in (("first", (0.2, 0.7, 0.1)), ("second", (0.3, 0.4, 0.3))):
        stages = [getattr(d, attr) for d in draws]
        counts = Counter(st.resize for st in stages)
        for kind, p in zip(("up", "down", "keep"), up_down_keep):
            assert_frequency(counts[kind], n, p)
        assert_frequency(sum(st.noise == "gaussian" for st in stages), n, 0.5)
        assert_frequency(sum(st.gray_noise for st in stages), n, 0.4)
        for mode in RESIZE_MODES:
            assert_frequency(sum(st.resize_mode == mode for st in stages), n, 1 / 3)
    sizes = Counter(d.first.kernel.size for d in draws)
    for size in CFG.kernel_sizes:
        assert_frequency(sizes[size], n, 1 / len(CFG.kernel_sizes))
    # basicsr draws beta below 1 or above 1 with p 0.5 each: the plateau's (1, 2) range makes half exactly 1
    plateau = [d.first.kernel.beta for d in draws if d.first.kernel.family.startswith("plateau")]
    assert_frequency(sum(b == 1.0 for b in plateau), len(plateau), 0.5)


def test_kernels_sum_to_one_are_centred_and_point_symmetric(draws):
    seen = set()
    for d in draws[:300]:
        for k in (d.first.kernel, d.second.kernel, d.final_sinc):
            if k is None:
                continue
            seen.add(k.family)
            taps = bk.kernel_of(k)
            assert taps.shape == (k.size, k.size) and taps.dtype == torch.float64
            assert abs(float(taps.sum()) - 1) < 1e-12
            assert torch.allclose(taps, taps.flip(0, 1), atol=1e-15)  # correlation == convolution
            ax = torch.arange(k.size, dtype=torch.float64) - (k.size - 1) / 2
            assert abs(float((taps.sum(0) * ax).sum())) < 1e-12 and abs(float((taps.sum(1) * ax).sum())) < 1e-12
    assert seen == set(bk.FAMILIES) | {bk.SINC}


def test_anisotropic_gaussian_matches_the_rotated_covariance_form():
    sx, sy, theta, size = 2.5, 0.7, 0.6, 15
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv = np.linalg.inv(rot @ np.diag([sx**2, sy**2]) @ rot.T)
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)  # x along columns
    xy = np.stack([xx, yy], -1)
    ref = np.exp(-0.5 * np.einsum("...i,ij,...j->...", xy, inv, xy))
    ref /= ref.sum()
    assert np.allclose(bk.gaussian(size, sx, sy, theta).numpy(), ref, atol=1e-14)
    # beta = 1: the generalized Gaussian is the Gaussian
    assert torch.allclose(bk.generalized_gaussian(size, sx, sy, theta, 1.0), bk.gaussian(size, sx, sy, theta))
    # isotropic: separable into the 1-D Gaussian
    g = np.exp(-(ax**2) / (2 * 1.3**2))
    assert np.allclose(bk.gaussian(size, 1.3, 1.3).numpy(), np.outer(g, g) / g.sum() ** 2, atol=1e-15)


def test_sinc_kernel_is_a_ringing_low_pass():
    k = bk.sinc(21, math.pi / 4)
    assert float(k.min()) < 0  # truncated ideal low-pass: negative lobes (ringing)
    assert float(k[10, 10]) == float(k.max())
    # cutoff pi/4 (bin 16 of 128) passes lower frequencies and stops higher ones, up to the ripple of a
    # 21-tap truncation (about 0.13 either side)
    row = torch.fft.fft2(k, s=(128, 128)).abs()[0]
    assert float(row[0]) == pytest.approx(1, abs=1e-12)
    assert float(row[:13].min()) > 0.8 and float(row[24:64].max()) < 0.13
    assert float(row[16]) == pytest.approx(0.5, abs=0.1)


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("scale,h,w", [(4, 96, 64), (3, 45, 60), (2, 40, 34)])
def test_output_size_range_and_8_bit_values(scale, h, w):
    hr = smooth_image(h, w)
    for i in range(4):
        lr = blind_degrade(hr, scale, blind_rng("img", 0, i))
        assert lr.shape == (3, h // scale, w // scale) and lr.dtype == torch.float32
        assert float(lr.min()) >= 0 and float(lr.max()) <= 1
        assert torch.equal((lr * 255).round() / 255, lr)


def test_tiny_images_and_refusals():
    lr = blind_degrade(smooth_image(12, 16), 4, blind_rng("tiny", 0))  # smaller than the kernels' radius
    assert lr.shape == (3, 3, 4)
    with pytest.raises(SrpipeError, match="mod-crop"):
        blind_degrade(smooth_image(30, 32), 4, blind_rng("x"))
    with pytest.raises(SrpipeError, match="RGB"):
        blind_degrade(torch.rand(1, 32, 32), 4, blind_rng("x"))
    with pytest.raises(TypeError, match="Generator"):
        blind_degrade(smooth_image(32, 32), 4, 7)
    with pytest.raises(UsageError, match="kernel_prob"):
        BlindConfig(kernel_prob=(0.5, 0.5, 0.1, 0, 0, 0))


def test_same_name_and_seed_give_the_same_lr_others_differ():
    hr = smooth_image(64, 64)
    a = blind_degrade(hr, 4, blind_rng("photo", 3))
    assert torch.equal(a, blind_degrade(hr, 4, blind_rng("photo", 3)))
    assert not torch.equal(a, blind_degrade(hr, 4, blind_rng("photo", 4)))
    assert not torch.equal(a, blind_degrade(hr, 4, blind_rng("other", 3)))
    assert not torch.equal(a, blind_degrade(hr, 4, blind_rng("photo", 3, draw=1)))
    # a torch Generator works too, reproducibly
    t1 = blind_degrade(hr, 4, torch.Generator().manual_seed(5))
    assert torch.equal(t1, blind_degrade(hr, 4, torch.Generator().manual_seed(5)))
    # sample + apply is the same computation as blind_degrade
    rng = blind_rng("photo", 3)
    assert torch.equal(a, apply_blind(hr, 4, sample_blind(rng), rng))


def test_unsharp_masking_of_the_hr_is_optional_and_sharpens():
    hr = smooth_image(64, 64)
    plain = blind_degrade(hr, 4, blind_rng("u"))
    usm = blind_degrade(hr, 4, blind_rng("u"), BlindConfig(gt_usm=True))
    assert usm.shape == plain.shape and not torch.equal(usm, plain)


def read(path) -> torch.Tensor:
    return read_image(path)[0]


def test_writer_files_names_and_pairs_json(tmp_path, caplog):
    src = make_folder(tmp_path / "hr", 3, (50, 42), seed=4)
    (src / "broken.png").write_bytes(b"not an image")
    m = make_blind_pairs(hr_dir=src, out_dir=tmp_path / "out", scale=4, draws=2, seed=9)
    out = tmp_path / "out"
    assert json.loads((out / "pairs.json").read_text()) == json.loads(json.dumps(m))
    assert m["method"] == "blind" and m["scale"] == 4 and m["seed"] == 9 and m["draws"] == 2
    assert m["config"] == to_dict(BlindConfig())
    names = [p["name"] for p in m["pairs"]]
    assert names == [f"img_{i:02d}_d{j}" for i in range(3) for j in range(2)]
    assert "broken.png" in caplog.text
    for p in m["pairs"]:
        hr, lr = read(out / p["hr"]), read(out / p["lr"])
        assert hr.shape == (3, 40, 48) and lr.shape == (3, 10, 12) and p["hr_size"] == [48, 40]
        source = read(src / p["source"])[:, :40, :48]  # mod-cropped
        assert torch.equal(hr, source)
        expected = blind_degrade(source, 4, blind_rng(p["source"].rsplit(".", 1)[0], 9, p["draw"]))
        assert torch.equal(lr, expected)
        assert p["degradation"]["first"]["kernel"]["family"] in bk.FAMILIES + (bk.SINC,)
    # sr-train's matching by name pairs every file
    from srpipe.upscale.data import match_pairs

    assert [n for n, _, _ in match_pairs(out)] == sorted(names)


def test_writer_is_independent_of_order_and_of_the_other_files(tmp_path):
    src = make_folder(tmp_path / "all", 4, (32, 32), seed=5)
    one = tmp_path / "one"
    one.mkdir()
    (one / "img_02.png").write_bytes((src / "img_02.png").read_bytes())
    make_blind_pairs(hr_dir=src, out_dir=tmp_path / "a", seed=1)
    m = make_blind_pairs(hr_dir=one, out_dir=tmp_path / "b", seed=1)
    assert [p["name"] for p in m["pairs"]] == ["img_02"]  # one draw: plain names
    assert (tmp_path / "a/lr/img_02.png").read_bytes() == (tmp_path / "b/lr/img_02.png").read_bytes()
    make_blind_pairs(hr_dir=one, out_dir=tmp_path / "c", seed=2)
    assert (tmp_path / "a/lr/img_02.png").read_bytes() != (tmp_path / "c/lr/img_02.png").read_bytes()


def test_writer_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"junk")
    with pytest.raises(SrpipeError, match="no usable image"):
        make_blind_pairs(hr_dir=bad, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "pairs.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SrpipeError, match="contains no images"):
        make_blind_pairs(hr_dir=empty, out_dir=tmp_path / "out")
    good = make_folder(tmp_path / "good", 1, (16, 16))
    with pytest.raises(UsageError, match="draws"):
        make_blind_pairs(hr_dir=good, out_dir=tmp_path / "out", draws=0)
    with pytest.raises(UsageError, match="scale"):
        make_blind_pairs(hr_dir=good, out_dir=tmp_path / "out", scale=8)


def cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `srpipe ARGS`."""
    from srpipe.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    c = capsys.readouterr()
    return e.value.code, c.out, c.err


def test_cli_blind_needs_no_model(tmp_path, capsys):
    src = make_folder(tmp_path / "hr", 2, (40, 40), seed=6)
    out = tmp_path / "pairs"
    args = ["make-pairs", "--degradation", "blind", "--hr", src, "--out", out, "--draws", "2", "--seed", "3"]
    code, stdout, err = cli(capsys, *args, "--scale", "2")
    assert code == 0, err
    assert "4 blind pairs" in stdout
    m = json.loads((out / "pairs.json").read_text())
    assert (m["method"], m["scale"], m["draws"], m["seed"]) == ("blind", 2, 2, 3)
    assert sorted(p.name for p in (out / "lr").iterdir()) == [f"img_0{i}_d{j}.png" for i in range(2) for j in range(2)]


def test_cli_degradation_errors(tmp_path, capsys):
    src = make_folder(tmp_path / "hr", 1, (32, 32))
    base = ["make-pairs", "--hr", src, "--out", tmp_path / "pairs"]
    code, _, err = cli(capsys, *base, "--degradation", "psf")
    assert code == 2 and "--degradation" in err and "blind" in err and "learned" in err, err
    code, _, err = cli(capsys, *base)  # learned is the default and needs a model
    assert code == 2 and "--model" in err and "--degradation blind" in err, err
    code, _, err = cli(capsys, *base, "--degradation", "learned", "--draws", "3")
    assert code == 2 and "--draws cannot be used with --degradation learned" in err, err
    code, _, err = cli(capsys, *base, "--degradation", "blind", "--model", tmp_path, "--jpeg", "50")
    assert code == 2 and "--model, --jpeg cannot be used with --degradation blind" in err, err
    assert not (tmp_path / "pairs").exists()
