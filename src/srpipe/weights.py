"""Pretrained backbones (VGG19, LPIPS AlexNet/VGG16, FID Inception), resolved and loaded for real.

Each file is looked for, in order:
1. an explicit folder: ``--weights-dir`` (passed in as ``weights_dir``) or ``$SRPIPE_WEIGHTS_DIR``;
2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints`` (where torchvision puts its downloads);
3. a normal download into that cache.
If all fail, `MissingWeightsError` names the file, its URL and where to put it. A randomly
initialised backbone is never returned: for LPIPS that means never ``pnet_rand=True``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from srpipe.errors import SrpipeError


@dataclass(frozen=True)
class WeightFile:
    filename: str
    url: str
    used_for: str


# Filenames are the ones torchvision / pytorch-fid download under, so an existing hub cache is reused.
FILES = {
    "vgg19": WeightFile(
        "vgg19-dcbb9e9d.pth",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        "VGG19 perceptual loss (ESRGAN)",
    ),
    "alexnet": WeightFile(
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "LPIPS AlexNet backbone (DSGAN perceptual loss, eval)",
    ),
    "vgg16": WeightFile(
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "LPIPS VGG backbone",
    ),
    "inception": WeightFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "FID/KID InceptionV3 (pytorch-fid)",
    ),
}


class MissingWeightsError(SrpipeError):
    """A pretrained file could not be found or downloaded."""


def hub_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def explicit_dir(weights_dir: str | os.PathLike | None = None) -> Path | None:
    d = weights_dir or os.environ.get("SRPIPE_WEIGHTS_DIR")
    return Path(d) if d else None


def find(name: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Path of an existing local copy (explicit folder, then hub cache), or None. Never downloads."""
    wf = FILES[name]
    candidates = []
    d = explicit_dir(weights_dir)
    if d is not None:
        candidates.append(d / wf.filename)
    candidates.append(hub_dir() / wf.filename)
    for c in candidates:
        if c.is_file() and c.stat().st_size > 0:
            return c
    return None


_IDENTITIES: dict[tuple, str] = {}  # (path, inode, mtime_ns, size) -> sha256, for this process


def identity(name: str, weights_dir: str | os.PathLike | None = None, *, sha256=None) -> str:
    """sha256 of the file `find` resolves for backbone `name`, or ``"absent"``. Never downloads.

    What a cache key holds for a pretrained file a stage uses: a stage run without the file, or with
    another one, is not the same result. Hashes are remembered per (path, inode, mtime, size) for the
    process; `sha256(path)` replaces the hashing (e.g. a persistent stat cache).
    """
    path = find(name, weights_dir)
    if path is None:
        return "absent"
    if sha256 is not None:
        return sha256(path)
    import hashlib

    st = path.stat()
    sig = (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
    if sig not in _IDENTITIES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _IDENTITIES[sig] = h.hexdigest()
    return _IDENTITIES[sig]


def resolve(name: str, weights_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Local path of backbone `name` (a key of FILES): explicit folder, hub cache, then download."""
    wf = FILES[name]
    found = find(name, weights_dir)
    if found is not None:
        return found
    target = hub_dir() / wf.filename
    offline = os.environ.get("SRPIPE_OFFLINE", "") == "1"
    error = "downloads disabled by SRPIPE_OFFLINE=1" if offline else "download disabled"
    if download and not offline:
        import torch

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(wf.url, str(target), progress=False)
            return target
        except Exception as e:  # no network, proxy, HTTP error: all end in the same advice
            error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    d = explicit_dir(weights_dir)
    places = f"{d} (--weights-dir / SRPIPE_WEIGHTS_DIR) or {target.parent}" if d else str(target.parent)
    raise MissingWeightsError(
        f"pretrained weights {wf.filename} ({wf.used_for}) not found and could not be downloaded ({error}); "
        f"download {wf.url} and put it in {places}"
    )


def load_state_dict(path: Path) -> dict:
    """A plain tensor dict from a .pth (weights_only: nothing is unpickled but tensors) or .safetensors."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MissingWeightsError(f"cannot load pretrained weights {path}: {e}".splitlines()[0]) from e


@contextlib.contextmanager
def _hub_with(path: Path, filename: str):
    """Make torchvision/pytorch-fid's own loaders find `path` under its hub filename, offline.

    Both libraries fetch through `torch.hub.load_state_dict_from_url`, which looks in
    `torch.hub.get_dir()/checkpoints` first; when our file lives elsewhere, a temporary hub folder
    with a link to it serves the same bytes without a download.
    """
    import torch

    if path.parent == hub_dir() and path.name == filename:
        yield
        return
    old = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="srpipe-hub-") as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        os.symlink(path.resolve(), Path(tmp) / "checkpoints" / filename)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub.set_dir(old)


def _wrong_file(name: str, path: Path, e: Exception) -> MissingWeightsError:
    """The error for a file that loads but is not the network it is named after."""
    wf = FILES[name]
    # torch puts the useful part ("Missing key(s) ...") on the second line: keep it, on one line.
    detail = " ".join(line.strip() for line in str(e).splitlines())[:160] or type(e).__name__
    return MissingWeightsError(
        f"{path} is not the {wf.used_for} weights file ({detail}); delete it and download {wf.url}"
    )


def _check_loaded(module, state: dict, prefix_map: dict[str, str], what: str, path: Path) -> None:
    """Verify that `module` carries the file's tensors (guards against a silently random backbone)."""
    import torch

    own = module.state_dict()
    checked = 0
    for k_file, v in state.items():
        for pf, pm in prefix_map.items():
            if k_file.startswith(pf):
                k = pm + k_file[len(pf) :]
                if k in own:
                    if not torch.equal(own[k].cpu().float(), v.float()):
                        raise MissingWeightsError(f"{what}: tensor {k} does not match {path}")
                    checked += 1
    if checked == 0:
        raise MissingWeightsError(f"{what}: no tensor of {path} was found in the network; is it the right file?")


def vgg19_features(weights_dir=None, *, last_layer: int = 34):
    """torchvision VGG19 `features[: last_layer + 1]` with ImageNet weights, frozen, eval mode.

    last_layer=34 is conv5_4 *before* its ReLU, the ESRGAN perceptual layer.
    """
    import torchvision

    path = resolve("vgg19", weights_dir)
    state = load_state_dict(path)
    try:
        # Build the convolutional part only: vgg19() would first initialise the 120M-parameter
        # classifier we throw away (seconds of CPU and ~0.5 GB per call).
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["E"], batch_norm=False)
    except ImportError:  # a torchvision that moved them
        features = torchvision.models.vgg19(weights=None).features
    # Only the convolutional part is used; a file with or without the classifier loads the same.
    feats_state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(feats_state, strict=True)
    except RuntimeError as e:
        raise _wrong_file("vgg19", path, e) from e
    feats = features[: last_layer + 1].eval()
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats


def lpips_model(net: str = "alex", weights_dir=None):
    """`lpips.LPIPS` (v0.1 linear heads shipped with the package) on a real ImageNet backbone."""
    import lpips

    key = {"alex": "alexnet", "vgg": "vgg16"}.get(net)
    if key is None:
        raise SrpipeError(f"unknown LPIPS network {net!r}: use alex or vgg")
    path = resolve(key, weights_dir)
    state = load_state_dict(path)  # first: a corrupt file gets our message, not torch's unpickling error
    with _hub_with(path, FILES[key].filename), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips calls torchvision's deprecated `pretrained=`
        try:
            model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=False, verbose=False)
        except RuntimeError as e:  # torchvision's strict load_state_dict: wrong keys or shapes
            raise _wrong_file(key, path, e) from e
    # lpips slices torchvision's `features` into slice1..5 keeping the layer indices.
    _check_loaded(
        model.net,
        {k: v for k, v in state.items() if k.startswith("features.")},
        {f"features.{i}.": f"slice{s}.{i}." for s in range(1, 6) for i in range(40)},
        "LPIPS backbone",
        path,
    )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def fid_inception(weights_dir=None, *, dims: int = 2048):
    """pytorch-fid's InceptionV3 (FID weights) returning the `dims`-d pool features."""
    from pytorch_fid.inception import InceptionV3

    path = resolve("inception", weights_dir)
    block = InceptionV3.BLOCK_INDEX_BY_DIM[dims]
    state = load_state_dict(path)  # first: a corrupt file gets our message, not torch's unpickling error
    with _hub_with(path, FILES["inception"].filename):
        try:
            model = InceptionV3([block], resize_input=True, normalize_input=True, use_fid_inception=True)
        except RuntimeError as e:  # pytorch-fid's strict load_state_dict: wrong keys or shapes
            raise _wrong_file("inception", path, e) from e
    probe = {k: v for k, v in state.items() if k.startswith("Conv2d_1a_3x3.")}
    _check_loaded(model, probe, {"Conv2d_1a_3x3.": "blocks.0.0."}, "FID Inception", path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def status(weights_dir=None) -> list[tuple[str, WeightFile, Path | None]]:
    """(name, file, local path or None) for every known backbone, for `srpipe doctor`."""
    return [(n, wf, find(n, weights_dir)) for n, wf in FILES.items()]
