"""DSGAN stage: networks, schedule, training, resume, refusals, make-pairs, CLI, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import ckpt, loop
from srpipe.cli import main
from srpipe.config import RunOptions, build_config
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.config import PRESETS, DegradeConfig, OptimConfig
from srpipe.degrade.pairs import make_pairs
from srpipe.degrade.train import lr_at, train
from srpipe.errors import SrpipeError
from srpipe.engine.runfolder import ConfigChangedError
from srpipe.engine.signals import Interrupted
from srpipe.engine.weights import MissingWeightsError

TINY = {
    "data": {"hr_crop": 32, "val_fraction": 0.2},
    "model": {"features": 8, "res_blocks": 1, "d_features": 8},
    "loss": {"perceptual": "none", "w_adv": 0.05},
    "optim": {"batch": 2, "iters": 6, "lr": 1e-3},
}


def cfg(**sets) -> DegradeConfig:
    return build_config(DegradeConfig, preset=TINY, sets=[f"{k}={v}" for k, v in sets.items()])


def run_opts(**kw) -> RunOptions:
    return RunOptions(device="cpu", log_every=1, **kw)


def test_generator_and_discriminator_shapes_and_ranges():
    G = DSGANGenerator(features=8, res_blocks=2)
    D = DSGANDiscriminator(features=8)
    x = torch.rand(2, 3, 20, 24)
    y = G(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert D(x).shape == (2, 1, 20, 24)
    assert sum(isinstance(m, torch.nn.PReLU) for m in G.modules()) == 1 + 2


def test_spectral_norm_discriminator_bounds_every_conv_and_drops_batch_norm():
    D = DSGANDiscriminator(features=8, spectral_norm=True)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    x = torch.rand(2, 3, 16, 16)
    for _ in range(20):  # power iterations converge in training mode
        D(x)
    D.eval()
    for c in convs:  # largest singular value of the reshaped weight: 1 (power iteration, loose)
        w = c.weight.flatten(1)
        assert float(torch.linalg.matrix_norm(w.detach(), ord=2)) == pytest.approx(1.0, abs=0.05)
    plain = DSGANDiscriminator(features=8)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 2
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())


def test_d_lr_scale_sets_the_discriminators_lr_only(tiny_hr, tiny_lr, tmp_path, monkeypatch):
    from srpipe.engine import accel

    opts = []
    real_adam = accel.adam
    monkeypatch.setattr(accel, "adam", lambda *a, **k: opts.append(real_adam(*a, **k)) or opts[-1])
    c = cfg(**{"optim.d_lr_scale": 0.25, "model.d_spectral_norm": "true", "optim.iters": 2})
    train(c, hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "run", run=run_opts())
    opt_g, opt_d = opts  # built in this order by train()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(0.25e-3)
    with pytest.raises(ValueError, match="d_lr_scale"):
        OptimConfig(d_lr_scale=0)
    paper = build_config(DegradeConfig, preset=PRESETS["paper"])
    assert paper.optim.d_lr_scale == 1.0 and paper.model.d_spectral_norm is False


def test_generator_receptive_radius_is_exact():
    G = DSGANGenerator(features=4, res_blocks=2).eval()
    r = G.receptive_radius
    x = torch.rand(1, 3, 41, 41)
    x2 = x.clone()
    x2[..., 20, 20] += 1.0
    diff = (G(x2) - G(x)).abs().sum(1)[0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    assert int(ys.max() - 20) == r and int(20 - xs.min()) == r


def test_lr_schedule_constant_then_linear_to_zero():
    o = OptimConfig(lr=1.0, iters=100, decay_start=0.5)
    assert lr_at(0, o) == 1.0 and lr_at(49, o) == 1.0
    assert lr_at(50, o) == pytest.approx(1.0)
    assert lr_at(75, o) == pytest.approx(0.5)
    assert lr_at(100, o) == 0.0


def test_paper_preset_matches_the_official_recipe():
    c = build_config(DegradeConfig, preset=PRESETS["paper"])
    assert (c.optim.lr, c.optim.beta1, c.optim.beta2, c.optim.batch) == (2e-4, 0.5, 0.999, 16)
    assert (c.data.hr_crop, c.data.lr_crop, c.loss.w_color, c.loss.w_adv, c.loss.w_perceptual) == (
        512,
        128,
        1.0,
        0.005,
        0.01,
    )
    assert c.optim.iters == 80_000 and c.loss.perceptual == "lpips-alex" and c.model.res_blocks == 8
    t = build_config(DegradeConfig, preset=PRESETS["tiny"])
    assert t.loss.perceptual == "none" and t.optim.iters <= 500


def test_training_changes_weights_and_writes_outputs(tiny_hr, tiny_lr, tmp_path):
    out = tmp_path / "run"
    gpath = train(cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=run_opts())
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
    full = train(cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "a", run=run_opts())
    monkeypatch.setattr(loop, "StopFlag", lambda: _StopAfter(3))
    with pytest.raises(Interrupted):
        train(cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "b", run=run_opts())
    assert (tmp_path / "b" / "ckpt" / "latest").read_text().strip() == "step_00000003"
    assert not (tmp_path / "b" / "generator.safetensors").exists()
    monkeypatch.undo()
    resumed = train(cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "b", run=run_opts())
    a, _ = ckpt.load_weights(full)
    b, _ = ckpt.load_weights(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    steps = [r.split(",")[0] for r in (tmp_path / "b" / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_changed_config_is_refused_unless_restart(tiny_hr, tiny_lr, tmp_path):
    out = tmp_path / "run"
    train(cfg(), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=run_opts())
    with pytest.raises(ConfigChangedError, match=r"optim\.lr.*--restart"):
        train(cfg(**{"optim.lr": 5e-4}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=run_opts())
    train(cfg(**{"optim.lr": 5e-4}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=out, run=run_opts(restart=True))
    assert json.loads((out / "config.json").read_text())["config"]["optim"]["lr"] == 5e-4


@pytest.mark.slow
def test_same_domain_needs_no_lr_folder(tiny_hr, tmp_path):
    train(cfg(**{"data.same_domain": "true"}), hr_dir=tiny_hr, real_lr_dir=None, out_dir=tmp_path / "r", run=run_opts())
    assert (tmp_path / "r" / "generator.safetensors").is_file()


def test_lpips_perceptual_loss_uses_resolved_weights(tiny_hr, tiny_lr, tmp_path, torch_home):
    # val_fraction 0: no end-of-run realism table, whose Inception rows would dominate the runtime
    c = cfg(
        **{
            "loss.perceptual": "lpips-alex",
            "optim.iters": 2,
            "data.scale": 2,
            "data.hr_crop": 64,
            "data.val_fraction": 0.0,
        }
    )
    train(c, hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())
    row = (tmp_path / "r" / "log.csv").read_text().splitlines()[1].split(",")
    assert float(row[7]) > 0  # perceptual column


def test_missing_perceptual_weights_fail_before_anything_is_written(tiny_hr, tiny_lr, tmp_path, empty_torch_home):
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        train(
            cfg(**{"loss.perceptual": "lpips-alex", "data.hr_crop": 128}),
            hr_dir=tiny_hr,
            real_lr_dir=tiny_lr,
            out_dir=tmp_path / "r",
            run=run_opts(),
        )
    assert not (tmp_path / "r").exists()


def test_bad_and_small_images_are_skipped_and_listed(tiny_hr, tiny_lr, tmp_path, caplog):
    (tiny_hr / "broken.png").write_bytes(b"not a png")
    (tiny_hr / "empty.jpg").write_bytes(b"")
    make_folder(tiny_hr, 1, (16, 16), prefix="small")
    train(cfg(**{"optim.iters": 1}), hr_dir=tiny_hr, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())
    err = caplog.text
    assert "skipped 2 unreadable" in err and "broken.png" in err and "empty.jpg" in err
    assert "small_00.png (16x16)" in err


def test_no_usable_image_is_an_error_that_says_how_to_lower_the_crop(tmp_path, tiny_lr):
    small = make_folder(tmp_path / "small", 2, (16, 16))
    with pytest.raises(SrpipeError, match="hr_crop"):
        train(cfg(), hr_dir=small, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SrpipeError, match="contains no images"):
        train(cfg(), hr_dir=empty, real_lr_dir=tiny_lr, out_dir=tmp_path / "r", run=run_opts())


@pytest.fixture
def generator_file(tmp_path) -> Path:
    torch.manual_seed(3)
    G = DSGANGenerator(features=8, res_blocks=2)
    p = tmp_path / "g.safetensors"
    ckpt.save_weights(
        p, G.state_dict(), arch="DSGANGenerator", args={"features": 8, "res_blocks": 2}, meta={"scale": 4}
    )
    return p


def test_make_pairs_sdsr_sizes_and_manifest(tmp_path, generator_file):
    hr = make_folder(tmp_path / "hrin", 2, (70, 66))
    m = make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "pairs", device="cpu")
    assert m["scale"] == 4 and m["mode"] == "SDSR" and len(m["pairs"]) == 2
    from srpipe.io.imageio import read_image

    h, _ = read_image(tmp_path / "pairs" / "hr" / "img_00.png")
    lo, _ = read_image(tmp_path / "pairs" / "lr" / "img_00.png")
    assert h.shape == (3, 64, 68) and lo.shape == (3, 16, 17)
    assert json.loads((tmp_path / "pairs" / "pairs.json").read_text())["generator"]["sha256"]


def test_make_pairs_tdsr_cleans_hr_first(tmp_path, generator_file):
    hr = make_folder(tmp_path / "hrin", 1, (66, 64))
    make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "p", cleanup_factor=2, device="cpu")
    from srpipe.io.imageio import read_image

    h, _ = read_image(tmp_path / "p" / "hr" / "img_00.png")
    lo, _ = read_image(tmp_path / "p" / "lr" / "img_00.png")
    assert h.shape == (3, 32, 32) and lo.shape == (3, 8, 8)
    assert json.loads((tmp_path / "p" / "pairs.json").read_text())["mode"] == "TDSR"


def test_make_pairs_tiles_equal_the_whole_image(tmp_path, generator_file):
    hr = make_folder(tmp_path / "hrin", 1, (200, 136))
    make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "small_tiles", tile=8, device="cpu")
    make_pairs(model=generator_file, hr_dir=hr, out_dir=tmp_path / "whole", tile=4096, device="cpu")
    a = (tmp_path / "small_tiles" / "lr" / "img_00.png").read_bytes()
    b = (tmp_path / "whole" / "lr" / "img_00.png").read_bytes()
    assert a == b


def test_make_pairs_refuses_missing_or_foreign_models(tmp_path):
    hr = make_folder(tmp_path / "hrin", 1, (32, 32))
    with pytest.raises(SrpipeError, match="does not exist"):
        make_pairs(model=tmp_path / "nope.safetensors", hr_dir=hr, out_dir=tmp_path / "o", device="cpu")
    (tmp_path / "run").mkdir()
    with pytest.raises(SrpipeError, match="did degrade-train finish"):
        make_pairs(model=tmp_path / "run", hr_dir=hr, out_dir=tmp_path / "o", device="cpu")
    other = tmp_path / "d.safetensors"
    ckpt.save_weights(
        other, DSGANDiscriminator(features=4).state_dict(), arch="DSGANDiscriminator", args={"features": 4}
    )
    with pytest.raises(SrpipeError, match="not a degrade-train model"):
        make_pairs(model=other, hr_dir=hr, out_dir=tmp_path / "o", device="cpu")
    assert not (tmp_path / "o" / "pairs.json").exists()


def test_cli_degrade_train_and_make_pairs(tiny_hr, tiny_lr, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("[data]\nhr_crop = 32\n[model]\nfeatures = 8\nres_blocks = 1\nd_features = 8\n[optim]\nbatch = 2\n")
    with pytest.raises(SystemExit) as e:
        main(
            [
                "degrade-train",
                "--hr",
                str(tiny_hr),
                "--real-lr",
                str(tiny_lr),
                "--out",
                str(tmp_path / "run"),
                "--preset",
                "tiny",
                "--config",
                str(toml),
                "--iters",
                "2",
                "--device",
                "cpu",
            ]
        )
    assert e.value.code == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "generator.safetensors" in captured.out and "active losses" in captured.err
    with pytest.raises(SystemExit) as e:
        main(
            [
                "make-pairs",
                "--model",
                str(tmp_path / "run"),
                "--hr",
                str(tiny_hr),
                "--out",
                str(tmp_path / "pairs"),
                "--device",
                "cpu",
            ]
        )
    assert e.value.code == 0
    assert "6 pairs (x4)" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--real-lr", "--lr"])
def test_cli_real_lr_folder_takes_its_old_spelling_too(tiny_hr, tiny_lr, tmp_path, monkeypatch, capsys, flag):
    import srpipe.degrade.train as dsgan

    seen = {}

    def fake_train(cfg, *, hr_dir, real_lr_dir, out_dir, run):
        seen.update(hr_dir=hr_dir, real_lr_dir=real_lr_dir)
        return Path(out_dir) / "generator.safetensors"

    monkeypatch.setattr(dsgan, "train", fake_train)
    argv = [
        "degrade-train",
        "--method",
        "dsgan",
        "--hr",
        str(tiny_hr),
        flag,
        str(tiny_lr),
        "--out",
        str(tmp_path / "r"),
    ]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--preset", "tiny", "--device", "cpu"])
    assert e.value.code == 0, capsys.readouterr().err
    assert seen == {"hr_dir": str(tiny_hr), "real_lr_dir": str(tiny_lr)}


def test_cli_help_shows_real_lr_only_and_asks_for_it(tiny_hr, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["degrade-train", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "--real-lr PATH" in text and "--lr" not in text.replace("--real-lr", "")
    with pytest.raises(SystemExit) as e:
        main(["degrade-train", "--method", "dsgan", "--hr", str(tiny_hr), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "--real-lr DIR is required" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_make_pairs_precisions_are_the_inference_ones(capsys):
    from srpipe.config import INFER_PRECISIONS

    with pytest.raises(SystemExit) as e:
        main(["make-pairs", "--help"])
    assert e.value.code == 0 and f"--precision [{'|'.join(INFER_PRECISIONS)}]" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--set", "optim.nosuch=1"], 2, "unknown config key optim.nosuch"),
        (["--set", "optim.lr=fast"], 2, "optim.lr: expected a number"),
        (["--scale", "5"], 2, "data.scale must be 2, 3 or 4, got 5"),
        (["--precision", "fp16"], 2, "run.precision: 'fp16' is not one of 'auto', 'bf16', 'fp32'"),
        (["--set", "data.hr_crop=30"], 2, "multiple of data.scale"),
        (["--set", "loss.perceptual=lpips-alex", "--set", "data.hr_crop=64"], 2, "at least 32 px"),
    ],
)
def test_cli_config_errors_are_one_line(tiny_hr, tiny_lr, tmp_path, capsys, args, code, message):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "degrade-train",
                "--hr",
                str(tiny_hr),
                "--lr",
                str(tiny_lr),
                "--out",
                str(tmp_path / "r"),
                "--preset",
                "tiny",
                *args,
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == code and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_cli_missing_folder_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "degrade-train",
                "--hr",
                str(tmp_path / "nope"),
                "--lr",
                str(tmp_path),
                "--out",
                str(tmp_path / "r"),
                "--preset",
                "tiny",
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == 1 and "does not exist" in err and "Traceback" not in err
