"""weights: resolution order (explicit dir, env, hub cache, download), failure message, real loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srpipe.engine import weights
from srpipe.errors import SrpipeError
from srpipe.engine.weights import FILES, MissingWeightsError, resolve

VGG = FILES["vgg19"].filename


def _touch(folder: Path, name: str, data: bytes = b"weights") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


# ---------------------------------------------------------------------------------------------
# Resolution order


def test_resolve_from_explicit_dir_argument(empty_torch_home, tmp_path):
    f = _touch(tmp_path / "w", VGG)
    assert resolve("vgg19", tmp_path / "w") == f
    assert resolve("vgg19", str(tmp_path / "w")) == f


def test_resolve_from_env_dir(empty_torch_home, tmp_path, monkeypatch):
    f = _touch(tmp_path / "env", VGG)
    monkeypatch.setenv("SRPIPE_WEIGHTS_DIR", str(tmp_path / "env"))
    assert resolve("vgg19") == f
    # the argument (--weights-dir) wins over the environment
    g = _touch(tmp_path / "arg", VGG)
    assert resolve("vgg19", tmp_path / "arg") == g


def test_explicit_dir_before_hub_cache_then_hub(torch_home, tmp_path):
    hub_file = torch_home / "hub" / "checkpoints" / VGG
    assert resolve("vgg19") == hub_file
    f = _touch(tmp_path / "w", VGG)
    assert resolve("vgg19", tmp_path / "w") == f
    # an explicit folder without the file falls back to the cache
    (tmp_path / "other").mkdir()
    assert resolve("vgg19", tmp_path / "other") == hub_file


def test_empty_file_is_not_a_weights_file(empty_torch_home, tmp_path):
    _touch(tmp_path / "w", VGG, b"")
    with pytest.raises(MissingWeightsError):
        resolve("vgg19", tmp_path / "w")


def test_failure_message_names_file_url_and_folders(empty_torch_home, tmp_path):
    with pytest.raises(MissingWeightsError) as ei:
        resolve("vgg19")
    msg = str(ei.value)
    assert VGG in msg and FILES["vgg19"].url in msg
    assert str(empty_torch_home / "hub" / "checkpoints") in msg
    assert "SRPIPE_OFFLINE" in msg and "\n" not in msg
    (tmp_path / "w").mkdir()
    with pytest.raises(MissingWeightsError) as ei:
        resolve("inception", tmp_path / "w")
    msg = str(ei.value)
    assert FILES["inception"].filename in msg and FILES["inception"].url in msg
    assert str(tmp_path / "w") in msg and "--weights-dir" in msg


def test_download_used_when_allowed(empty_torch_home, monkeypatch):
    monkeypatch.delenv("SRPIPE_OFFLINE")
    calls = []

    def fake_download(url, dst, *args, **kwargs):
        calls.append(url)
        Path(dst).write_bytes(b"downloaded")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = resolve("alexnet")
    assert calls == [FILES["alexnet"].url]
    assert path == empty_torch_home / "hub" / "checkpoints" / FILES["alexnet"].filename
    assert path.read_bytes() == b"downloaded"
    # now cached: no second download
    assert resolve("alexnet") == path and len(calls) == 1


def test_download_not_attempted_when_disabled(empty_torch_home, monkeypatch):
    monkeypatch.delenv("SRPIPE_OFFLINE")
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(MissingWeightsError, match="download disabled"):
        resolve("vgg19", download=False)


def test_download_failure_is_reported(empty_torch_home, monkeypatch):
    monkeypatch.delenv("SRPIPE_OFFLINE")

    def no_network(url, dst, *a, **k):
        raise ConnectionError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(MissingWeightsError) as ei:
        resolve("vgg19")
    msg = str(ei.value)
    assert "ConnectionError" in msg and "name resolution" in msg and FILES["vgg19"].url in msg


def test_status_lists_every_backbone(torch_home):
    rows = {name: path for name, _, path in weights.status()}
    assert set(rows) == set(FILES)
    assert rows["vgg19"] == torch_home / "hub" / "checkpoints" / VGG
    assert rows["vgg16"] is None  # no stand-in for the LPIPS-VGG backbone


# ---------------------------------------------------------------------------------------------
# Real loading of the stand-ins


def test_vgg19_features_loads_file_tensors(torch_home):
    feats = weights.vgg19_features()
    state = torch.load(torch_home / "hub" / "checkpoints" / VGG, weights_only=True)
    assert torch.equal(feats[0].weight, state["features.0.weight"])
    assert torch.equal(feats[34].bias, state["features.34.bias"])
    assert len(feats) == 35 and not feats.training
    assert all(not p.requires_grad for p in feats.parameters())
    assert feats(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)
    assert len(weights.vgg19_features(last_layer=8)) == 9


def test_lpips_loads_backbone_and_measures(torch_home):
    model = weights.lpips_model("alex")
    state = torch.load(torch_home / "hub" / "checkpoints" / FILES["alexnet"].filename, weights_only=True)
    own = model.net.state_dict()  # lpips keeps torchvision's layer numbers inside slice1..5
    assert torch.equal(own["slice1.0.weight"], state["features.0.weight"])
    assert torch.equal(own["slice5.10.weight"], state["features.10.weight"])
    assert all(not p.requires_grad for p in model.parameters()) and not model.training
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        d_same = model(a, a).flatten()
        d_diff = model(a, b).flatten()
    assert torch.all(d_same.abs() < 1e-6)
    assert torch.all(d_diff > 1e-3)


def test_lpips_from_explicit_dir_only(empty_torch_home, standin_weights_store):
    """The _hub_with trick: lpips loads through torch.hub, yet the file lives in --weights-dir."""
    hub_before = torch.hub.get_dir()
    model = weights.lpips_model("alex", weights_dir=standin_weights_store)
    state = torch.load(standin_weights_store / FILES["alexnet"].filename, weights_only=True)
    assert torch.equal(model.net.state_dict()["slice2.3.weight"], state["features.3.weight"])
    assert torch.hub.get_dir() == hub_before  # the temporary hub folder is undone
    assert not any((empty_torch_home / "hub").rglob("*.pth"))  # nothing copied or downloaded


def test_fid_inception_loads(torch_home):
    model = weights.fid_inception()
    state = torch.load(torch_home / "hub" / "checkpoints" / FILES["inception"].filename, weights_only=True)
    own = model.state_dict()
    assert torch.equal(own["blocks.0.0.conv.weight"], state["Conv2d_1a_3x3.conv.weight"])
    assert torch.equal(own["blocks.3.2.branch3x3_1.conv.weight"], state["Mixed_7c.branch3x3_1.conv.weight"])
    assert not model.training and all(not p.requires_grad for p in model.parameters())


def test_fid_inception_from_explicit_dir(empty_torch_home, standin_weights_store):
    model = weights.fid_inception(standin_weights_store, dims=64)  # first block only: a cheap forward
    with torch.no_grad():
        out = model(torch.rand(2, 3, 40, 40))[0]
    assert out.shape == (2, 64, 73, 73) and torch.isfinite(out).all() and out.std() > 0


@pytest.mark.parametrize(
    "loader,name",
    [
        (lambda d: weights.vgg19_features(d), "vgg19"),
        (lambda d: weights.lpips_model("alex", d), "alexnet"),
        (lambda d: weights.fid_inception(d), "inception"),
    ],
)
def test_wrong_or_corrupt_file_is_missing_weights_error(empty_torch_home, tmp_path, loader, name):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    torch.save({"features.0.weight": torch.zeros(2, 2), "foo": torch.ones(3)}, wrong / FILES[name].filename)
    with pytest.raises(MissingWeightsError) as ei:
        loader(wrong)
    msg = str(ei.value)
    assert FILES[name].filename in msg and FILES[name].url in msg and "\n" not in msg
    corrupt = tmp_path / "corrupt"
    _touch(corrupt, FILES[name].filename, b"<html>404 Not Found</html>")
    with pytest.raises(MissingWeightsError, match=FILES[name].filename):
        loader(corrupt)


def test_unknown_lpips_net():
    with pytest.raises(SrpipeError, match="alex or vgg"):
        weights.lpips_model("squeeze")
