"""`make-pairs`: realistic LR/HR pairs from any HR folder with a trained degradation model.

The model is a `degrade-train` run of either method; its weights header says which:
- dsgan: LR = G(bicubic(HR, 1/scale));
- pdm: LR = (HR * k)↓s + n, the kernel drawn from a code z and the noise from random maps, both
  seeded by the image name and `seed` (`srpipe.degrade.pdm`).
Then, for both:
- SDSR (cleanup_factor 1): HR kept as is.
- TDSR (cleanup_factor c > 1): HR first "cleaned" by a bicubic downscale by c (removes the source's
  own noise and blur; official `create_dataset.py --cleanup_factor 2`), then as SDSR.
HR is mod-cropped to a multiple of the scale so LR is exactly HR/scale. Large images run through
`srpipe.io.tiling` with a pad of the generator's receptive radius: identical to whole-image output, with
bounded device memory. JPEG stage (`jpeg`: auto|off|Q|QMIN:QMAX, `srpipe.io.jpeg`): the LR is round-tripped
through real libjpeg after G, at a quality drawn per image from a generator seeded by the image name
(results independent of order); auto draws from the JPEG estimate degrade-train stored with the model
(its header, else jpeg.json next to it). The LR file stays PNG: a lossless store of the decoded JPEG.
`pairs.json` is written last: a folder without it is not a finished output. Under torchrun each
rank degrades its share of the files (`srpipe.engine.folders.map_folder`); rank 0 writes `pairs.json`
once every rank has finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from srpipe import __version__
from srpipe.engine import folders, inference
from srpipe.engine.folders import Skip
from srpipe.io import jpeg as jpg
from srpipe.degrade import contract
from srpipe.degrade.archs import DSGANGenerator
from srpipe.degrade.pdm import PDMDegrader
from srpipe.errors import SrpipeError, first_line
from srpipe.io.imageio import file_sha256, list_sources, read_image, write_png
from srpipe.log import info, warn
from srpipe.io.resize import bicubic_down, mod_crop
from srpipe.io.files import write_json
from srpipe.io.pair_folder import PAIRS, pair_entry, pair_files
from srpipe.io.tiling import auto_batch, tiled_apply


def generator_file(model: str | Path) -> Path:
    p = Path(model)
    if p.is_dir():
        p = p / contract.GENERATOR
        if not p.is_file():
            raise SrpipeError(f"no {contract.GENERATOR} in {model}: did degrade-train finish there?")
    elif not p.is_file():
        raise SrpipeError(f"model {p} does not exist (give a degrade-train run folder or its {contract.GENERATOR})")
    return p


ARCHS = {"DSGANGenerator": DSGANGenerator, "PDMDegrader": PDMDegrader}


def load_generator(
    model: str | Path, device: torch.device | str = "cpu", *, require: str | None = None
) -> tuple[DSGANGenerator | PDMDegrader, dict, Path]:
    """(degradation model in eval mode, header, file) from a run folder or its generator.safetensors.

    `require` ("dsgan" or "pdm") refuses a model of the other method, saying which it is.
    """
    path = generator_file(model)
    G, header = inference.load_network(path, ARCHS, what="a degrade-train model (dsgan or pdm)")
    method = method_of(G)
    if require is not None and method != require:
        raise SrpipeError(
            f"{path} is a {method} model, but a {require} model is required here: "
            f"train one with degrade-train --method {require}, or give a run of that method"
        )
    return G.to(device), header, path


def method_of(G) -> str:
    """ "pdm" or "dsgan", from the model's class."""
    return "pdm" if isinstance(G, PDMDegrader) else "dsgan"


def degrade_image(
    G: DSGANGenerator | PDMDegrader,
    hr: torch.Tensor,
    scale: int,
    *,
    tile: int = 512,
    device="cpu",
    autocast: torch.dtype | None = None,
    batch: int = 1,
    noise_seed: int = 0,
) -> torch.Tensor:
    """Realistic LR (3, H/scale, W/scale) of a mod-cropped HR (3, H, W) in [0, 1]; tiled on `device`.

    `autocast` (fp16/bf16) runs G in that precision; a batch of tiles with non-finite output is rerun
    in fp32. `batch` tiles per forward pass (0: `tiling.auto_batch`). A generator with a noise input
    gets standard-normal maps drawn for the whole image from `noise_seed`, so tiling does not change
    the output and the same seed gives the same LR. A pdm model draws its kernel code from the same seed.
    """
    device = torch.device(device)
    if isinstance(G, PDMDegrader):
        return pdm_degrade_image(G, hr, tile=tile, device=device, autocast=autocast, batch=batch, seed=noise_seed)
    x = bicubic_down(hr, scale)
    k = G.noise_channels
    if k:  # noise rides along as extra channels, so every tile sees its own part of one draw
        noise = torch.randn((k, *x.shape[-2:]), generator=torch.Generator().manual_seed(noise_seed))
        x = torch.cat([x, noise], 0)

    def net(t: torch.Tensor) -> torch.Tensor:
        return G(t[:, :3], t[:, 3:]) if k else G(t)

    pad = G.receptive_radius
    fn, fallback = inference.autocast_fns(net, autocast, device)
    b = batch or auto_batch(device, tile + 2 * pad)
    return tiled_apply(
        x,
        fn,
        scale=1,
        tile=tile,
        pad=pad,
        device=device,
        batch=b,
        channels_last=device.type == "cuda",
        fallback=fallback,
    ).clamp_(0, 1)


def pdm_degrade_image(
    G: PDMDegrader, hr: torch.Tensor, *, tile: int, device: torch.device, autocast, batch: int, seed: int
) -> torch.Tensor:
    """A pdm model's LR (3, H/s, W/s) of a mod-cropped HR (3, H, W): one kernel for the whole image
    (its code z drawn from `seed`), a strided blur of the whole image (linear and cheap), then the
    noise net tiled over the LR with its random maps drawn for the whole image first, so tiles
    reproduce whole-image output."""
    gen = torch.Generator().manual_seed(seed)
    z = G.draw_z(1, gen)
    maps = torch.randn((G.noise.random_channels, hr.shape[1] // G.scale, hr.shape[2] // G.scale), generator=gen)
    G = G.to(device)
    lr = G.blur(hr[None].to(device), z.to(device))[0].float()
    x = torch.cat([lr.cpu(), maps], 0)

    def net(t: torch.Tensor) -> torch.Tensor:
        return t[:, :3] + G.noise(t[:, :3], t[:, 3:])

    pad = G.noise.receptive_radius
    fn, fallback = inference.autocast_fns(net, autocast, device)
    b = batch or auto_batch(device, tile + 2 * pad)
    out = tiled_apply(x, fn, scale=1, tile=tile, pad=pad, device=device, batch=b, fallback=fallback)
    return out.clamp_(0, 1)


def noise_seed(name: str, seed: int = 0) -> int:
    """The random-draw seed of one image: from its name (and `seed`, when not 0), so it does not
    depend on order or ranks."""
    key = f"dsgan-noise/{name}" if seed == 0 else f"dsgan-noise/{seed}/{name}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def model_jpeg_estimate(header: dict, gpath: Path) -> jpg.JpegEstimate | None:
    """The JPEG estimate stored with a generator: its header's `jpeg`, else `jpeg.json` beside it; None if neither."""
    if "jpeg" in header:
        return jpg.JpegEstimate.from_json(header["jpeg"])
    side = gpath.parent / contract.JPEG
    if side.is_file():
        import json

        try:
            return jpg.JpegEstimate.from_json(json.loads(side.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise SrpipeError(
                f"{side} is unreadable ({first_line(e)}); delete it or pass --jpeg off|Q|QMIN:QMAX"
            ) from None
    return None


@dataclass(frozen=True)
class PairWriter:
    """What make-pairs does with one HR file: the TDSR cleanup, the mod-crop, the degradation and the
    JPEG stage, then both PNGs. Returns the file's pairs.json entry and its JPEG quality (None: none)."""

    G: torch.nn.Module  # the degradation model as it runs (compiled, channels-last)
    out: Path
    scale: int
    cleanup_factor: int
    tile: int
    device: torch.device
    autocast: torch.dtype | None
    batch: int
    seed: int  # the model's random draws, per image from its name and this seed
    jpeg: jpg.JpegSpec
    estimate: jpg.JpegEstimate | None  # what --jpeg auto draws from
    jpeg_seed: int

    def __call__(self, p: Path) -> tuple[dict, int | None]:
        img, _ = read_image(p)
        hr = img
        if self.cleanup_factor > 1:
            hr = bicubic_down(mod_crop(hr, self.cleanup_factor), self.cleanup_factor)
        hr = mod_crop(hr, self.scale)
        if min(hr.shape[-2:]) < self.scale:
            raise Skip(f"{p} is too small ({img.shape[2]}x{img.shape[1]}) for x{self.scale}")
        lr = degrade_image(
            self.G,
            hr,
            self.scale,
            tile=self.tile,
            device=self.device,
            autocast=self.autocast,
            batch=self.batch,
            noise_seed=noise_seed(p.stem, self.seed),
        )
        q = jpg.draw_quality(self.jpeg, self.estimate, jpg.image_rng(p.stem, self.jpeg_seed))
        if q is not None:
            lr = jpg.jpeg_compress(lr, q)
        gt_path, lq_path = pair_files(self.out, p.stem)
        write_png(gt_path, hr)
        write_png(lq_path, lr)
        entry = pair_entry(p.stem) | {"source": p.name, "hr_size": [hr.shape[2], hr.shape[1]]}
        return entry, q

    def manifest(self, records: list, *, method: str, generator: dict) -> dict:
        """pairs.json of the records `__call__` returned (every rank's, in the files' order)."""
        return {
            "pairs": [entry for entry, _ in records],
            "scale": self.scale,
            "mode": "TDSR" if self.cleanup_factor > 1 else "SDSR",
            "cleanup_factor": self.cleanup_factor,
            "method": method,
            "seed": self.seed,
            "generator": generator,
            "jpeg": {
                "spec": self.jpeg.to_json(),
                "seed": self.jpeg_seed,
                "estimate": self.estimate.to_json() if self.estimate is not None else None,
                "qualities": {entry["name"]: q for entry, q in records},
            },
            "srpipe": __version__,
        }


@torch.no_grad()
def make_pairs(
    *,
    model,
    hr_dir,
    out_dir,
    cleanup_factor: int = 1,
    tile: int = 512,
    device: str = "auto",
    precision: str = "auto",
    batch: int = 0,
    compile: bool = False,
    jpeg: str = "auto",
    jpeg_seed: int = 0,
    seed: int = 0,
) -> dict:
    """Write OUT/hr/NAME.png, OUT/lr/NAME.png and OUT/pairs.json; returns the pairs.json content.

    `jpeg` auto|off|Q|QMIN:QMAX (a string or `srpipe.io.jpeg.JpegSpec`) and `jpeg_seed`: the JPEG
    stage after G (module docstring); both change the LR. `seed`: the model's random draws (noise
    maps, a pdm model's kernel code), per image from its name and this seed; 0 keeps the draws of
    earlier versions.

    `precision` auto|fp16|bf16|fp32 (auto: fp16 on CUDA), `batch` tiles per pass (0: auto),
    `compile`: torch.compile the generator. These change speed, and the LR only by rounding.
    Several GPUs or machines: torchrun --nproc-per-node N -m srpipe make-pairs ... (a share of the files each).
    """
    with folders.session(device) as (share, dev):
        autocast = inference.autocast_dtype(precision, dev)
        if cleanup_factor < 1:
            raise SrpipeError(f"--cleanup-factor must be >= 1, got {cleanup_factor}")
        if tile < 8:
            raise SrpipeError(f"--tile must be >= 8, got {tile}")
        spec = jpeg if isinstance(jpeg, jpg.JpegSpec) else jpg.parse_jpeg(jpeg)
        G, header, gpath = load_generator(model, dev)
        estimate = _auto_jpeg_estimate(spec, header, gpath)
        if dev.type == "cuda":
            G = G.to(memory_format=torch.channels_last)
        run_g = torch.compile(G) if compile and not isinstance(G, PDMDegrader) else G
        scale = _scale_of(header, gpath)
        paths = list_sources(hr_dir, "HR")
        out = Path(out_dir)
        (out / PAIRS).unlink(missing_ok=True)  # from here on the folder is not a finished output
        mode = "TDSR" if cleanup_factor > 1 else "SDSR"
        info(f"make-pairs {mode} x{scale} with the {method_of(G)} model {gpath} on {dev}: {len(paths)} image(s)")
        if estimate is not None:
            info(f"JPEG stage (auto) from the real LR: {estimate.describe()}")
        writer = PairWriter(
            G=run_g,
            out=out,
            scale=scale,
            cleanup_factor=cleanup_factor,
            tile=tile,
            device=dev,
            autocast=autocast,
            batch=batch,
            seed=seed,
            jpeg=spec,
            estimate=estimate,
            jpeg_seed=jpeg_seed,
        )
        done = folders.map_folder(paths, writer, where=hr_dir, share=share, progress="make-pairs")
        generator = {"path": str(gpath), "sha256": file_sha256(gpath), "args": header.get("args")}
        manifest = writer.manifest(done.results, method=method_of(G), generator=generator)
        if spec.mode != "off":
            qualities = manifest["jpeg"]["qualities"]
            used = [q for q in qualities.values() if q is not None]
            info(
                f"JPEG stage ({spec}): {len(used)}/{len(qualities)} LR image(s) compressed, quality {jpg.summarize(used)}"
            )
        if share.main:
            write_json(out / PAIRS, manifest)
        return manifest


def _auto_jpeg_estimate(spec: jpg.JpegSpec, header: dict, gpath: Path) -> jpg.JpegEstimate | None:
    """The estimate --jpeg auto draws from (None for any other --jpeg, and for a model without one)."""
    if spec.mode != "auto":
        return None
    estimate = model_jpeg_estimate(header, gpath)
    if estimate is None:
        warn(
            f"--jpeg auto: {gpath} has no JPEG estimate (a model from before degrade-train stored one): "
            "no JPEG stage; pass --jpeg Q or QMIN:QMAX to add one"
        )
    return estimate


def _scale_of(header: dict, gpath: Path) -> int:
    """The scale a degradation model's header gives: 2, 3 or 4, else the file is not degrade-train's."""
    try:
        scale = int(header.get("scale", 4))
    except (TypeError, ValueError):
        scale = 0
    if scale not in (2, 3, 4):
        raise SrpipeError(
            f"{gpath}: its header gives scale {header.get('scale')!r}, not 2, 3 or 4; "
            "the file is damaged or was not written by degrade-train"
        )
    return scale
