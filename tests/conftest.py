"""Shared fixtures: stand-in pretrained weights, tiny image folders, a fixed seed.

Pretrained backbones cannot be downloaded here, so the session writes stand-in files with the real
names, shapes and key layout into a temporary TORCH_HOME; srpipe's real resolution and loading code
then runs on them. Values are He-initialised (BN as identity) so that features neither vanish nor
explode: with torchvision's default Inception init every image maps to nearly the same features and
FID would be ~0 for any two folders, which would make the tests check nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from srpipe.engine import weights

DATA = Path(__file__).parent / "data"


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


@pytest.fixture(scope="session")
def standin_weights_store(tmp_path_factory) -> Path:
    """A folder holding stand-in files for VGG19, AlexNet and the FID Inception (made once)."""
    d = tmp_path_factory.mktemp("standin-weights")
    write_standin_weights(d)
    return d


@pytest.fixture
def torch_home(tmp_path, monkeypatch, standin_weights_store) -> Path:
    """A fresh TORCH_HOME whose hub cache holds the stand-in weights (as links); downloads are off."""
    home = tmp_path / "torch_home"
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for f in standin_weights_store.iterdir():
        os.symlink(f, ckpt / f.name)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("SRPIPE_OFFLINE", "1")
    monkeypatch.delenv("SRPIPE_WEIGHTS_DIR", raising=False)
    torch.hub.set_dir(str(home / "hub"))
    return home  # `_isolated` restores the hub directory


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch) -> Path:
    """A TORCH_HOME with no weights at all, downloads off: every backbone is missing."""
    home = tmp_path / "empty_torch_home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("SRPIPE_OFFLINE", "1")
    monkeypatch.delenv("SRPIPE_WEIGHTS_DIR", raising=False)
    torch.hub.set_dir(str(home / "hub"))
    return home


# The user's settings that would change what a test sees: debug tracebacks, weight folders and caches,
# injected faults, a torchrun environment. Every test starts without them.
USER_ENV = (
    "SRPIPE_DEBUG",
    "SRPIPE_WEIGHTS_DIR",
    "SRPIPE_FAULT",
    "SRPIPE_CACHE",
    "SRPIPE_CACHE_DIR",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    """Seeds fixed; no network; the user's env, TORCH_HOME and caches out of reach; torch state restored.

    TORCH_HOME is an empty folder (tests that need weights ask for `torch_home`), the caches live in
    a fresh folder, and the torch.hub directory and thread count are put back after the test.
    """
    torch.manual_seed(0)
    np.random.seed(0)
    for k in USER_ENV:
        monkeypatch.delenv(k, raising=False)
    home = tmp_path_factory.mktemp("env")
    (home / "torch" / "hub").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("SRPIPE_OFFLINE", "1")  # a test never reaches the network
    hub, threads = getattr(torch.hub, "_hub_dir", None), torch.get_num_threads()
    torch.hub._hub_dir = None  # torch.hub.get_dir() follows TORCH_HOME again
    yield
    torch.hub._hub_dir = hub
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


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


@pytest.fixture
def tiny_hr(tmp_path) -> Path:
    return make_folder(tmp_path / "hr", 6, (64, 64), seed=1)


@pytest.fixture
def tiny_lr(tmp_path) -> Path:
    return make_folder(tmp_path / "lr", 6, (32, 32), seed=2)


@pytest.fixture(autouse=True)
def _library_logging():
    """`srpipe.log` as a library user finds it (no CLI handler, no progress bars), INFO kept for caplog.

    Tests that go through `srpipe.cli.main` get the CLI's rendering on stderr (main configures it);
    tests that call the library read its messages with caplog. Restored after each test, so a CLI
    test does not change what the next one sees.
    """
    import logging

    from srpipe import log

    logger = log.logger
    saved = (logger.handlers[:], logger.level, logger.propagate, log._factory)
    logger.handlers[:] = []
    logger.setLevel(logging.INFO)
    logger.propagate = True
    log.set_progress(None)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    log.set_progress(saved[3])
