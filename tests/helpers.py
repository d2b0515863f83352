"""Builders the tests share: tiny image folders, stand-in pretrained weights, the repository root.

Import them as `from tests.helpers import make_folder` (the test folders are packages, so two test
files may share a basename). Fixtures and hooks stay in conftest.py.

Pretrained backbones cannot be downloaded in the tests, so `write_standin_weights` writes stand-in files
with the real names, shapes and key layout; srpipe's real resolution and loading code then runs on them.
Values are He-initialised (BN as identity) so that features neither vanish nor explode: with
torchvision's default Inception init every image maps to nearly the same features and FID would be ~0
for any two folders, which would make the tests check nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from srpipe.engine import weights

ROOT = Path(__file__).resolve().parents[1]  # the repository: src/, bench/, data/


def _he_init(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return model


def _fid_inception_standin() -> torch.nn.Module:
    """The module structure pytorch-fid builds in `fid_inception_v3`, without loading weights."""
    from pytorch_fid import inception as pi

    net = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = pi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pi.FIDInceptionE_1(1280)
    net.Mixed_7c = pi.FIDInceptionE_2(2048)
    return net


def write_standin_weights(folder: Path, names=("vgg19", "alexnet", "inception")) -> None:
    """Write He-initialised stand-ins under their real file names into `folder`."""
    import torchvision

    folder.mkdir(parents=True, exist_ok=True)
    builders = {
        "alexnet": lambda: torchvision.models.alexnet(weights=None),
        "vgg16": lambda: torchvision.models.vgg16(weights=None),
        "inception": _fid_inception_standin,
    }
    for i, name in enumerate(names):
        target = folder / weights.FILES[name].filename
        if target.exists():
            continue
        if name == "vgg19":  # features only: srpipe loads VGG19's convolutional part
            feats = _he_init(torchvision.models.vgg19(weights=None).features, seed=i)
            state = {f"features.{k}": v for k, v in feats.state_dict().items()}
        else:
            state = _he_init(builders[name](), seed=i).state_dict()
        torch.save(state, target)


def make_folder(folder: Path, n: int, size: tuple[int, int], *, seed: int = 0, prefix: str = "img") -> Path:
    """`n` smooth random RGB PNGs of (w, h) pixels: structured enough for GANs and metrics to see."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n):
        base = rng.random((max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
        img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
        cv2.imwrite(str(folder / f"{prefix}_{i:02d}.png"), (img * 255).round().astype(np.uint8))
    return folder


# A DSGAN that trains in well under a second on 32-px crops: the degrade tests' starting config.
TINY_DSGAN = {
    "data": {"hr_crop": 32, "val_fraction": 0.2},
    "model": {"features": 8, "res_blocks": 1, "d_features": 8},
    "loss": {"perceptual": "none", "w_adv": 0.05},
    "optim": {"batch": 2, "iters": 6, "lr": 1e-3},
}


def dsgan_cfg(**sets):
    """TINY_DSGAN with `--set`-style overrides, e.g. dsgan_cfg(**{"optim.iters": 1})."""
    from srpipe.config import build_config
    from srpipe.degrade.config import DegradeConfig

    return build_config(DegradeConfig, preset=TINY_DSGAN, sets=[f"{k}={v}" for k, v in sets.items()])


def cpu_run(**kw):
    """RunOptions on the CPU, logging every step."""
    from srpipe.config import RunOptions

    return RunOptions(device="cpu", log_every=1, **kw)


def dsgan_argv(hr, real_lr, out, *extra, flag: str = "--real-lr") -> list[str]:
    """`srpipe degrade-train --method dsgan` on HR and real-LR folders into `out`, tiny preset, then `extra`."""
    args = ["degrade-train", "--method", "dsgan", "--hr", str(hr), flag, str(real_lr), "--out", str(out)]
    return [*args, "--preset", "tiny", *(str(a) for a in extra)]
