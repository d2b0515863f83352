"""upscale.contract: what sr-train says it uses and writes is what its trainer uses and writes.

The degradation stage's contract is checked in tests/degrade/test_contract.py, and the pipeline's
stages reading both in tests/pipeline/test_stages.py."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from srpipe.config import RunOptions, build_config
from srpipe.upscale import contract as uc
from srpipe.upscale import interop
from srpipe.upscale.config import PRESETS, UpscaleConfig


def sr(*sets: str, preset: str = "tiny") -> UpscaleConfig:
    return build_config(UpscaleConfig, preset=PRESETS[preset], sets=list(sets))


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


def test_sr_train_writes_the_files_its_contract_names(tmp_path, pairs):
    from srpipe.upscale.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = sr(
            *("data.hr_patch=32", "model.num_feat=8", "model.num_block=1", "model.num_grow_ch=8"),
            *("model.d_features=8", "batch=2", "psnr.iters=2", "gan.iters=2", "data.val_fraction=0.25"),
        )
        out = tmp_path / "run"
        paths = train(cfg, pairs=pairs, out_dir=out, run=RunOptions(device="cpu", log_every=1, log="csv"), val_every=1)
    finally:
        torch.set_num_threads(threads)
    assert paths == {phase: out / uc.weights_file(phase) for phase in uc.PHASES}
    for phase in uc.PHASES:
        assert (out / uc.log_file(phase)).is_file()
        grids = sorted((out / uc.SAMPLES).glob(uc.sample_glob(phase)))
        assert [g.name for g in grids] == [uc.sample_file(phase, s) for s in (1, 2)]
        assert (out / uc.CKPT / phase).is_dir()
    assert (out / uc.BEST).is_file()
    written = {p.name for p in out.iterdir()}
    assert written - set(uc.RUN_FILES) == {"config.json", "split.json"}  # --restart keeps only the record
    assert set(uc.RUN_FILES) - written == {uc.pth_file(p) for p in uc.PHASES}  # no export_pth
    assert interop.resolve_model(out) == out / uc.weights_file("gan")


@pytest.mark.parametrize(
    ("sets", "preset", "gan"),
    [
        ((), "tiny", ("alexnet",)),  # the tiny preset's GAN phase has no perceptual term
        ((), "paper", ("vgg19", "alexnet")),
        (("data.val_fraction=0",), "paper", ("vgg19",)),  # nothing held out: no LPIPS validation
        (("gan.w_perceptual=0",), "paper", ("alexnet",)),
    ],
)
def test_sr_pretrained_files_per_phase(sets, preset, gan):
    cfg = sr(*sets, preset=preset)
    assert uc.pretrained(cfg, "psnr") == ()
    assert uc.pretrained(cfg, "gan") == gan


def test_sr_trainer_loads_what_the_contract_lists(torch_home):
    """`upscale.train.pretrained` builds VGG19 and LPIPS exactly where the contract lists them."""
    from srpipe.upscale.train import pretrained

    tr = SimpleNamespace(compute=SimpleNamespace(prepare=lambda m: m), device=torch.device("cpu"))
    for sets, preset in (((), "paper"), (("data.val_fraction=0",), "paper"), ((), "tiny")):
        cfg = sr(*sets, preset=preset)
        perceptual, lpips = pretrained(cfg, ["psnr", "gan"], RunOptions(), tr)
        listed = uc.pretrained(cfg, "gan")
        assert (perceptual is not None, lpips is not None) == (uc.PERCEPTUAL in listed, uc.LPIPS in listed)
        assert pretrained(cfg, ["psnr"], RunOptions(), tr) == (None, None)


def test_sr_loss_terms():
    assert uc.loss_terms(sr(), "psnr") == ["L1"]
    assert uc.loss_terms(sr(), "gan") == ["L1 x1", "RaGAN (patch D) x0.005"]
    paper = sr("fs.enabled=true", preset="paper")
    assert uc.loss_terms(paper, "gan") == [
        "L1 x0.01 on box k=9 low-passes",
        "VGG19 conv5_4 x1",
        "RaGAN (vgg D, high-pass input) x0.005",
    ]


def test_the_psnr_phase_key_leaves_out_what_only_the_gan_phase_reads():
    base = sr("data.hr_patch=128")  # 128: the vgg discriminator's size too
    for gan_only in ("gan.w_adv=0.01", "fs.enabled=true", "model.discriminator=vgg", "model.d_layers=2"):
        other = sr("data.hr_patch=128", gan_only)
        assert uc.key_config(other, "psnr") == uc.key_config(base, "psnr"), gan_only
        assert uc.key_config(other, "gan") != uc.key_config(base, "gan"), gan_only
    for shared in ("psnr.iters=7", "model.num_feat=16", "seed=3", "batch=4"):
        assert uc.key_config(sr("data.hr_patch=128", shared), "psnr") != uc.key_config(base, "psnr"), shared
    assert "gan" not in uc.key_config(base, "psnr") and "discriminator" not in uc.key_config(base, "psnr")["model"]


def test_file_names():
    assert [uc.weights_file(p) for p in uc.PHASES] == ["psnr.safetensors", "gan.safetensors"]
    assert [uc.log_file(p) for p in uc.PHASES] == ["log_psnr.csv", "log_gan.csv"]
    assert uc.sample_file("gan", 12) == "gan_00000012.png" and uc.alpha_file(0.8) == "alpha_0.80.safetensors"
    assert uc.alpha_of(uc.alpha_file(0.25).removesuffix(".safetensors")) == 0.25 and uc.alpha_of("psnr") is None
