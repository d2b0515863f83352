"""The JPEG stage of a degradation: estimate it from a real-LR folder, and apply it with real libjpeg.

Real low-quality photos are usually JPEGs. DSGAN's generator is a stride-1 convolutional network, so
it cannot place blocks on a fixed 8-pixel grid; `make-pairs` therefore compresses its LR output with
real libjpeg (through Pillow) at qualities estimated from the real LR.

The quality of one file (from its quantization tables, or from the lattice of its decoded pixels)
is estimated in `srpipe.io.jpeg_quality`; this module reads the `--jpeg` option, estimates a
folder, and applies the stage. The names of `jpeg_quality` are importable from here.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from srpipe.errors import SrpipeError, UsageError
from srpipe.io.jpeg_quality import (  # noqa: F401  (re-exported)
    BASE_CHROMA,
    BASE_LUMA,
    IJG_RESIDUAL,
    LATTICE_THRESHOLD,
    fit_qtables,
    ijg_table,
    lattice_residuals,
    quality_from_pixels,
    quality_from_qtables,
)

JPEG_SUBSAMPLING = 2  # Pillow's 4:2:0, the IJG/libjpeg default and what most web and camera JPEGs use


class JpegSpecError(UsageError):
    pass


# ---------------------------------------------------------------- the --jpeg option


@dataclass(frozen=True)
class JpegSpec:
    """What `make-pairs --jpeg` asked for: auto (from the model's estimate), off, one quality, a range."""

    mode: Literal["off", "fixed", "range", "auto"]
    qmin: int | None = None  # fixed: qmin == qmax == Q
    qmax: int | None = None

    def __str__(self) -> str:
        if self.mode in ("off", "auto"):
            return self.mode
        return str(self.qmin) if self.mode == "fixed" else f"{self.qmin}:{self.qmax}"

    def to_json(self) -> dict:
        return {"mode": self.mode, "qmin": self.qmin, "qmax": self.qmax, "text": str(self)}


def parse_jpeg(text: str) -> JpegSpec:
    """`auto`, `off`, `Q` or `QMIN:QMAX` (qualities 1..100) -> JpegSpec; JpegSpecError (exit 2) otherwise."""
    t = str(text).strip().lower()
    if t in ("auto", "off"):
        return JpegSpec(t)
    parts = t.split(":")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise JpegSpecError(f"--jpeg {text}: use auto, off, a quality Q (1..100) or a range QMIN:QMAX")
    qs = [int(p) for p in parts]
    for q in qs:
        if not 1 <= q <= 100:
            raise JpegSpecError(f"--jpeg {text}: quality must be 1..100")
    if len(qs) == 1:
        return JpegSpec("fixed", qs[0], qs[0])
    if qs[0] > qs[1]:
        raise JpegSpecError(f"--jpeg {text}: QMIN > QMAX")
    return JpegSpec("range", qs[0], qs[1])


# ---------------------------------------------------------------- folders


@dataclass(frozen=True)
class JpegEstimate:
    """The JPEG stage of a folder: per-file qualities of the compressed files, or kind "none"."""

    kind: Literal["none", "qtables", "pixels"]
    qualities: tuple[int, ...]  # one per JPEG-compressed image used
    qmin: int | None  # 10th percentile of `qualities`
    qmax: int | None  # 90th percentile
    n_jpeg: int  # images found JPEG-compressed
    n_total: int  # images looked at
    note: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["qualities"] = list(self.qualities)
        return d

    @classmethod
    def from_json(cls, d: dict | str) -> JpegEstimate:
        if isinstance(d, str):
            d = json.loads(d)
        try:
            kind = d["kind"]
            if kind not in ("none", "qtables", "pixels"):
                raise ValueError(f"kind {kind!r}")
            qs = tuple(int(q) for q in d.get("qualities", ()))
            if any(not 1 <= q <= 100 for q in qs):
                raise ValueError("a quality outside 1..100")
            return cls(
                kind,
                qs,
                d.get("qmin"),
                d.get("qmax"),
                int(d.get("n_jpeg", len(qs))),
                int(d.get("n_total", len(qs))),
                str(d.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SrpipeError(f"not a JPEG estimate ({e}); the file is damaged or was not written by srpipe") from None

    def describe(self) -> str:
        """One line, e.g. '12/12 JPEG files, quality 62-91 (median 75) from quantization tables'."""
        if self.kind == "none" or not self.qualities:
            return f"no JPEG compression found ({self.n_total} image(s))" + (f"; {self.note}" if self.note else "")
        what = "JPEG files" if self.kind == "qtables" else "images with a JPEG lattice"
        how = "from quantization tables" if self.kind == "qtables" else "from decoded pixels (luma DCT lattice)"
        med = int(np.median(self.qualities))
        s = f"{self.n_jpeg}/{self.n_total} {what}, quality {self.qmin}-{self.qmax} (median {med}) {how}"
        return s + (f"; {self.note}" if self.note else "")


NONE_ESTIMATE = JpegEstimate("none", (), None, None, 0, 0, "no estimate")


def _from_qualities(kind, qualities: list[int], n_total: int, note: str) -> JpegEstimate:
    if not qualities:
        return JpegEstimate("none", (), None, None, 0, n_total, note)
    qmin = int(np.floor(np.percentile(qualities, 10)))
    qmax = int(np.ceil(np.percentile(qualities, 90)))
    return JpegEstimate(kind, tuple(qualities), qmin, qmax, len(qualities), n_total, note)


def _is_jpeg_file(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            return fh.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def estimate_folder(
    paths: Sequence[Path], *, synthetic_lr: Sequence[torch.Tensor] | None = None, max_decoded: int = 64
) -> JpegEstimate:
    """The JPEG stage of the images `paths` (see the module docstring).

    JPEG files give their qualities from their tables; when at least one is a JPEG file, the other
    files are not decoded. Otherwise the decoded pixels of up to `max_decoded` images (evenly spread
    over the sorted list: bounded time) are fitted. `synthetic_lr` is
    accepted so callers can pass the generator's LR; the lattice fit does not need it.
    """
    from PIL import Image

    from srpipe.io.imageio import ImageReadError, read_image

    del synthetic_lr
    paths = [Path(p) for p in paths]
    jpegs = [p for p in paths if _is_jpeg_file(p)]
    if jpegs:
        qualities, foreign, unreadable = [], 0, 0
        for p in jpegs:
            try:
                with Image.open(p) as im:
                    tables = im.quantization
            except OSError:
                unreadable += 1
                continue
            if not tables:
                unreadable += 1
                continue
            q, residual = fit_qtables(tables)
            foreign += residual > IJG_RESIDUAL
            qualities.append(q)
        notes = []
        if foreign:
            notes.append(f"{foreign} file(s) use non-IJG tables (equivalent IJG quality given)")
        if unreadable:
            notes.append(f"{unreadable} JPEG file(s) without readable tables")
        if len(jpegs) < len(paths):
            notes.append(f"{len(paths) - len(jpegs)} non-JPEG file(s) not used")
        return _from_qualities("qtables", qualities, len(paths), "; ".join(notes))
    qualities, unreadable = [], 0
    if max_decoded and len(paths) > max_decoded:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, max_decoded).round()]
    for p in paths:
        try:
            img, _ = read_image(p)
        except ImageReadError:
            unreadable += 1
            continue
        q = quality_from_pixels(img)
        if q is not None:
            qualities.append(q)
    n = len(paths) - unreadable
    note = f"{unreadable} unreadable file(s) left out" if unreadable else ""
    if not qualities:
        return JpegEstimate("none", (), None, None, 0, n, note)
    return _from_qualities("pixels", qualities, n, note)


def estimate_tensors(images: Sequence[torch.Tensor]) -> JpegEstimate:
    """`estimate_folder`'s pixel path for images already decoded: (3, H, W) in [0, 1]."""
    qs = [q for q in (quality_from_pixels(im) for im in images) if q is not None]
    return _from_qualities("pixels", qs, len(images), "")


# ---------------------------------------------------------------- applying it


def jpeg_compress(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Round trip of (3, H, W) float [0, 1] through libjpeg (Pillow) at `quality`, 4:2:0 chroma.

    Same size out; values are the decoder's 8-bit output in [0, 1] (float32, on the input's device).
    """
    from PIL import Image

    if not 1 <= int(quality) <= 100:
        raise SrpipeError(f"JPEG quality must be 1..100, got {quality}")
    a = img.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a), "RGB").save(
        buf, "JPEG", quality=int(quality), subsampling=JPEG_SUBSAMPLING
    )
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("RGB"))
    return torch.from_numpy(out.astype(np.float32) / 255).permute(2, 0, 1).contiguous().to(img.device)


def draw_quality(spec: JpegSpec, est: JpegEstimate | None, rng) -> int | None:
    """One image's quality under `spec` (None: no JPEG). `rng`: random.Random or numpy Generator.

    auto: one of the estimate's per-file qualities, uniformly (the real LR's own distribution), or
    uniform qmin..qmax when it lists none; None for an estimate of kind "none" or no estimate.
    """

    def integers(lo: int, hi: int) -> int:  # inclusive
        if isinstance(rng, random.Random):
            return rng.randint(lo, hi)
        return int(rng.integers(lo, hi + 1))

    if spec.mode == "off":
        return None
    if spec.mode == "fixed":
        return int(spec.qmin)
    if spec.mode == "range":
        return integers(int(spec.qmin), int(spec.qmax))
    if est is None or est.kind == "none":
        return None
    if est.qualities:
        return int(est.qualities[integers(0, len(est.qualities) - 1)])
    if est.qmin is None or est.qmax is None:
        return None
    return integers(int(est.qmin), int(est.qmax))


def image_rng(name: str, seed: int = 0) -> random.Random:
    """A generator for one image, from its name and a seed: draws independent of order and ranks."""
    import hashlib

    h = hashlib.sha256(f"srpipe-jpeg:{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def summarize(qualities: Sequence[int]) -> str:
    """'MIN-MAX (median M)' of applied qualities, 'none' for none."""
    if not qualities:
        return "none"
    return f"{min(qualities)}-{max(qualities)} (median {int(np.median(qualities))})"


__all__ = [
    "JpegSpec",
    "JpegSpecError",
    "parse_jpeg",
    "fit_qtables",
    "quality_from_qtables",
    "quality_from_pixels",
    "lattice_residuals",
    "JpegEstimate",
    "NONE_ESTIMATE",
    "estimate_folder",
    "estimate_tensors",
    "jpeg_compress",
    "draw_quality",
    "image_rng",
    "ijg_table",
    "summarize",
    "IJG_RESIDUAL",
    "LATTICE_THRESHOLD",
]
