"""Fixtures and hooks only: stand-in pretrained weights in a temporary TORCH_HOME, tiny image folders,
and the autouse isolation every test runs under (seeds, environment, caches, torch state, logging).

The builders behind them (`make_folder`, `write_standin_weights`) live in tests/helpers.py, which test
files import; nothing imports this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import make_folder, write_standin_weights


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
