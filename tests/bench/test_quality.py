"""bench/quality.py's true degradations: sizes, formats and the noise/JPEG levels they document."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import quality  # noqa: E402
import quality_degradations  # noqa: E402
import quality_eval  # noqa: E402
import quality_tasks  # noqa: E402

from srpipe.io.jpeg import quality_from_qtables  # noqa: E402
from srpipe.eval.realism.measures import noise_sigma  # noqa: E402


def _flat_photo(h=128, w=160) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0.2, 0.7, h), torch.linspace(0.3, 0.6, w), indexing="ij")
    return torch.stack([x, y, (x + y) / 2])


def _decode(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(2, 0, 1) / 255


def test_noise_degradation_has_sigma_8_levels_at_quarter_size():
    data, ext = quality.degrade_noise(_flat_photo(), np.random.default_rng(0))
    lq = _decode(data)
    assert ext == "png" and lq.shape == (3, 32, 40)
    # 32x40 pixels give the MAD estimate a relative standard error of about 5%; rounding adds 1/12 level^2.
    assert noise_sigma(lq).mean().item() * 255 == pytest.approx(8.0, rel=0.2)


@pytest.mark.parametrize("kind,qualities", [("jpeg", {30}), ("camera", set(range(70, 91)))])
def test_compressing_degradations_store_the_jpeg_file(kind, qualities):
    data, ext = quality.DEGRADATIONS[kind](_flat_photo(), np.random.default_rng(1))
    assert ext == "jpg" and data[:2] == b"\xff\xd8"
    img = Image.open(io.BytesIO(data))
    assert img.size == (40, 32)
    assert quality_from_qtables(img.quantization) in qualities


def test_degradations_are_reproducible_per_seed():
    a = quality.degrade_camera(_flat_photo(), np.random.default_rng(5))[0]
    b = quality.degrade_camera(_flat_photo(), np.random.default_rng(5))[0]
    c = quality.degrade_camera(_flat_photo(), np.random.default_rng(6))[0]
    assert a == b and a != c


def test_camera_keeps_each_colour_in_its_channel():
    # A flat, strongly coloured photo: after the mosaic and the demosaic each channel's mean must stay
    # that of the HR. The mean of 1280 LR pixels carries a standard error under 0.005 from the sensor
    # noise, the sRGB curve turns that noise into a bias under 0.002 and JPEG moves a flat area's mean by
    # about a level; 0.03 allows all of it, and a red/blue swap is off by 0.5.
    h, w = 128, 160
    colour = torch.tensor([0.75, 0.45, 0.25])
    hr = colour[:, None, None].expand(3, h, w).clone()
    lq = _decode(quality.degrade_camera(hr, np.random.default_rng(3))[0])
    assert lq.mean(dim=(1, 2)).tolist() == pytest.approx(colour.tolist(), abs=0.03)


# ---------------------------------------------------------------- the blur degradation's known kernel


def _photo(h=96, w=128, seed=0) -> torch.Tensor:
    """Smooth random content with edges: a low-resolution random field upsampled, in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return (
        torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[0] * 0.8 + 0.1
    ).clamp(0, 1)


def test_blur_kernel_is_the_declared_gaussian():
    from srpipe.io.kernels import kernel_size, kernel_stats

    k = quality.blur_kernel()
    assert k.shape == (kernel_size(4), kernel_size(4)) == (20, 20)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    st = kernel_stats(k)
    # 20 taps hold the Gaussian to 3.7 sigma along its major axis: the truncation shortens it < 1%.
    assert st["sigma_major"] == pytest.approx(2.6, rel=0.01) and st["sigma_minor"] == pytest.approx(1.3, rel=0.01)
    assert st["angle_deg"] % 180 == pytest.approx(30.0, abs=0.5)
    assert np.allclose(st["centre"], 0.0, atol=1e-9)


def test_blur_lr_is_the_explicit_strided_convolution():
    hr = _photo().double()
    lr = quality.blur_lr(hr)
    assert lr.shape == (3, 24, 32)
    # Explicitly: the Gaussian written out (major axis along (cos 30, sin 30) in (x, y) = (column, row)
    # coordinates, taps centred at 9.5), LR pixel (i, j) at HR (4i + 1.5, 4j + 1.5): tap v covers HR
    # row 4i + 11 - v (convolution), away from the reflect-padded border.
    r = np.arange(20) - 9.5
    y, x = np.meshgrid(r, r, indexing="ij")
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    u, v = c * x + s * y, -s * x + c * y
    g = np.exp(-0.5 * ((u / 2.6) ** 2 + (v / 1.3) ** 2))
    g /= g.sum()
    assert np.allclose(quality.blur_kernel().numpy(), g, atol=1e-7)  # float32 construction
    h = hr.numpy()
    for i, j in [(3, 4), (10, 17), (20, 27)]:
        patch = h[:, 4 * i + 11 - 19 : 4 * i + 12, 4 * j + 11 - 19 : 4 * j + 12][:, ::-1, ::-1]
        want = (patch * g).sum(axis=(1, 2))
        assert np.allclose(lr[:, i, j].numpy(), want, atol=1e-6)


def test_blur_degradation_stores_a_jpeg_near_the_blurred_lr():
    hr = _photo()
    data, ext = quality.degrade_blur(hr, np.random.default_rng(3))
    assert ext == "jpg" and data[:2] == b"\xff\xd8"
    img = Image.open(io.BytesIO(data))
    assert img.size == (32, 24)
    lo, hi = quality_degradations.BLUR_JPEG
    assert lo <= quality_from_qtables(img.quantization) <= hi
    # Luma (4:2:0 chroma subsampling takes much more from this colourful test field): noise of at
    # most ~4.5 levels (variance 4e-4 * 0.9 + 4e-5, mean absolute value 0.8 sigma) and q >= 75 JPEG.
    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    diff = ((_decode(data) - quality.blur_lr(hr).float()) * w).sum(0).abs().mean().item() * 255
    assert 1.0 < diff < 5.0


def test_camera_effective_kernel_is_lens_and_box():
    from srpipe.io.kernels import kernel_stats

    st = kernel_stats(quality_degradations.camera_kernel())
    # Variances add: the lens sigma (1.2-1.8, second moment averaged) and the 4-pixel box's (16 - 1) / 12.
    lens_var = np.mean(np.linspace(1.2, 1.8, 7) ** 2)
    assert st["width"] == pytest.approx(np.sqrt(lens_var + 15 / 12), rel=0.02)
    assert st["anisotropy"] == pytest.approx(1.0, abs=1e-3) and np.allclose(st["centre"], 0.0, atol=1e-6)


# ---------------------------------------------------------------- the mid/low band statistic


def test_band_level_of_white_noise_is_near_zero_and_blur_lowers_it():
    from srpipe.eval.realism.measures import band_level
    from srpipe.io.kernels import gaussian_kernel

    g = torch.Generator().manual_seed(0)
    # A flat spectrum: equal power in both bands. 256 px gives the low band (rings 2-7) a few
    # thousand frequency samples: the level's standard error is about 0.2 dB.
    white = [torch.rand(3, 256, 256, generator=g) for _ in range(4)]
    levels = [band_level(x) for x in white]
    assert np.median(levels) == pytest.approx(0.0, abs=0.6)
    # Blur (a Gaussian of sigma 1 and 2 px, stride 1) takes power from the mid band: monotone, and
    # sigma 1 removes at least 10 dB there (its power response at 0.25 cycles/px is exp(-4 pi^2 f^2) = 0.08).
    blurred = []
    for sigma in (1.0, 2.0):
        k = gaussian_kernel(13, sigma)  # odd size: stride 1 keeps the grid
        x = torch.nn.functional.pad(white[0][None], [6] * 4, mode="reflect")
        y = torch.nn.functional.conv2d(x, k.expand(3, 1, 13, 13), groups=3)[0]
        blurred.append(band_level(y))
    assert levels[0] - 10 > blurred[0] > blurred[1]


# ---------------------------------------------------------------- closure and ratios


def test_closure_and_ratio_arithmetic():
    assert quality_eval.closure(26.0, 25.0, 27.0) == pytest.approx(0.5)
    assert quality_eval.closure(24.0, 25.0, 27.0) == pytest.approx(-0.5)
    assert quality_eval.closure(26.0, 25.0, 25.0) is None  # no gap to close
    assert quality_eval.closure(26.0, 25.0, 24.5) is None
    assert quality_eval.ratio(1.0, 4.0) == pytest.approx(0.25)
    assert quality_eval.ratio(1.0, 0.0) is None
    arms = {
        name: {"psnr_y": p, "noise_distance": n, "grid_distance": 0.2, "band_distance": b}
        for name, p, n, b in (("bicubic", 25.0, 8.0, 3.0), ("dsgan", 26.5, 2.0, 1.5), ("true", 27.0, 0.0, 0.0))
    }
    closures = quality_eval.add_comparisons(arms)
    assert closures == {"dsgan": pytest.approx(0.75)}
    assert arms["dsgan"]["noise_ratio"] == pytest.approx(0.25) and arms["dsgan"]["band_ratio"] == pytest.approx(0.5)
    assert arms["bicubic"]["grid_ratio"] == pytest.approx(1.0) and arms["true"]["noise_ratio"] == 0.0


# ---------------------------------------------------------------- cache locks and workers


def _lock_worker(work: str, start_at: float) -> None:
    """One worker over two tasks (the second depends on the first); every build appends its pid."""
    import os
    import time

    quality_tasks.POLL_S = 0.05

    def build(out: Path, deps) -> None:
        with open(Path(work) / "builds.txt", "a") as f:
            f.write(f"{out.name} {os.getpid()}\n")
        time.sleep(0.5)  # long enough for the other worker to find the entry locked
        (out / "value").write_text(out.name)

    tasks = [
        quality_tasks.Task("one", "thing", (), lambda k: "k1", build),
        quality_tasks.Task("two", "thing", ("one",), lambda k: k["one"] + "-k2", build),
    ]
    while time.time() < start_at:
        time.sleep(0.005)
    done = quality_tasks.run_tasks(tasks, Path(work), log=lambda m: None)
    assert sorted(done) == ["one", "two"]


def test_two_workers_build_each_entry_once(tmp_path):
    import multiprocessing as mp
    import time

    ctx = mp.get_context("fork")
    start = time.time() + 0.5
    procs = [ctx.Process(target=_lock_worker, args=(str(tmp_path), start)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = (tmp_path / "builds.txt").read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in lines) == ["k1", "k1-k2"]  # each entry built by one worker
    assert (tmp_path / "thing" / "k1-k2" / "value").read_text() == "k1-k2"
    assert json.loads((tmp_path / "thing" / "k1" / "DONE").read_text())["wall_s"] >= 0.5
    assert not list((tmp_path / "thing").glob("*.lock"))


def test_lock_of_a_dead_owner_is_taken_over(tmp_path):
    import os
    import socket
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    entry = tmp_path / "sr" / "abc"
    lock = tmp_path / "sr" / "abc.lock"
    lock.mkdir(parents=True)
    (lock / "owner").write_text(f"{socket.gethostname()} {os.getppid()}")  # alive: held
    assert quality_tasks.try_lock(entry) is None
    (lock / "owner").write_text(f"{socket.gethostname()} {dead.pid}")  # dead: a killed run's lock
    assert quality_tasks.try_lock(entry) == lock
    assert (lock / "owner").read_text() == f"{socket.gethostname()} {os.getpid()}"
    quality_tasks.unlock(lock)
    assert not lock.exists()


def test_failed_build_skips_its_dependents_and_is_retried_next_run(tmp_path):
    calls = []

    def bad(out, deps):
        calls.append("bad")
        raise RuntimeError("boom")

    tasks = [
        quality_tasks.Task("a", "x", (), lambda k: "a", bad),
        quality_tasks.Task("b", "x", ("a",), lambda k: "b", lambda o, d: calls.append("b")),
        quality_tasks.Task("c", "x", (), lambda k: "c", lambda o, d: calls.append("c")),
    ]
    done = quality_tasks.run_tasks(tasks, tmp_path, log=lambda m: None)
    assert sorted(done) == ["c"] and calls == ["bad", "c"]
    assert "boom" in (tmp_path / "x" / "a" / "FAILED").read_text()
    quality_tasks.run_tasks(tasks, tmp_path, log=lambda m: None)
    assert calls == ["bad", "c"]  # FAILED holds within a run; c is cached
    quality_tasks.clear_failed(tmp_path)
    quality_tasks.run_tasks(tasks, tmp_path, log=lambda m: None)
    assert calls == ["bad", "c", "bad"]


def test_worker_arguments_force_one_job_and_one_thread():
    argv = ["--jobs", "2", "--only", "noise", "--threads=4", "--arms", "bicubic"]
    assert quality_tasks._worker_argv(argv) == [
        "--only",
        "noise",
        "--arms",
        "bicubic",
        "--worker",
        "--jobs",
        "1",
        "--threads",
        "1",
    ]


# ---------------------------------------------------------------- smoke run


@pytest.mark.slow
def test_smoke_mode_runs_and_reuses_its_cache(tmp_path, capsys):
    from srpipe.io.imageio import write_png

    data = tmp_path / "data"
    for i in range(15):  # smoke mode: A/C/T = 6/6/3
        write_png(data / "hr" / "train" / f"p{i:02d}.png", _photo(192, 256, seed=i))
    argv = ["--mode", "smoke", "--data", str(data), "--work", str(tmp_path / "work"), "--only", "noise,blur"]
    argv += ["--arms", "bicubic,blind,dsgan,true"]
    assert quality.main(argv) == 0
    out = capsys.readouterr()
    assert "| blur | dsgan |" in out.out and "| noise | blind |" in out.out
    assert (
        out.err.count("building sr/") == 6
    )  # bicubic and blind: one each for both degradations; dsgan, true: two each
    res = json.loads((tmp_path / "work" / "smoke" / "results.json").read_text())
    blur = {r["degradation"]: r for r in res["results"]}["blur"]
    assert set(blur["arms"]) == {"bicubic", "blind", "dsgan", "true"} and set(blur["closure"]) == {"blind", "dsgan"}
    assert blur["arms"]["bicubic"]["kernel_error"] > 0.05 and blur["kernel"] == {"true": "blur", "targeted": True}
    assert blur["arms"]["bicubic"]["band_ratio"] == pytest.approx(1.0)
    assert set(blur["arms"]["dsgan"]["timing"]) == {"learner", "pairs", "sr"}
    assert res["meta"]["failed"] == []
    assert quality.main(argv) == 0  # everything cached: nothing is built again
    assert "building" not in capsys.readouterr().err


def test_effective_kernel_recovers_the_blur_kernel_from_pairs(tmp_path):
    from srpipe.io.imageio import write_png
    from srpipe.io.kernels import kernel_error, kernel_stats

    g = torch.Generator().manual_seed(1)
    for i in range(2):
        hr = (_photo(192, 256, seed=i) + 0.1 * torch.rand(3, 192, 256, generator=g)).clamp(
            0, 1
        )  # texture at every frequency
        write_png(tmp_path / "hr" / f"p{i}.png", hr)
        write_png(tmp_path / "lr" / f"p{i}.png", quality.blur_lr(hr).float())  # 8-bit rounding only
    k = quality_eval.effective_kernel(tmp_path)
    st = kernel_stats(k)
    assert st["sigma_major"] == pytest.approx(2.6, rel=0.05) and st["sigma_minor"] == pytest.approx(1.3, rel=0.05)
    assert st["angle_deg"] % 180 == pytest.approx(30, abs=2) and np.allclose(st["centre"], 0, atol=0.05)
    # The L2 error sums small residuals over 400 taps (8-bit rounding, the ridge): about 0.4 of
    # bicubic's error here, while the moments above are within a few percent.
    err = kernel_error(k, quality.blur_kernel())
    assert err < 0.5 * kernel_error(quality_degradations.bicubic_true_kernel(), quality.blur_kernel())
