"""The HTML run report: sections and values from real and fabricated run folders, and rendering in
headless Chromium (every image loads, a screenshot that is not blank)."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.helpers import make_folder
from srpipe.config import RunOptions
from srpipe.errors import SrpipeError
from srpipe.pipeline.report import write_report
from srpipe.pipeline.report.images import detail_window
from srpipe.pipeline.report.models import model_label, model_order, real_order
from srpipe.pipeline.run import run_pipeline
from srpipe.pipeline.spec import load_pipeline

# ---------------------------------------------------------------- reading the page back


class Page(HTMLParser):
    """The parts of the report the tests look at: sections, tables, images, stage rows, links."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.tables, self.images, self.stage_rows, self.links = [], [], [], {}, []
        self.tags: set[str] = set()
        self._row: str | None = None
        self._cells: list[str] = []
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "table":
            self.tables.append(a.get("class"))
        elif tag == "img":
            self.images.append(a)
        elif tag in ("a", "link", "script", "iframe", "source"):
            self.links.append((tag, a.get("href") or a.get("src")))
        elif tag == "tr" and "data-stage" in a:
            self._row, self._cells = a["data-stage"], []
        elif tag == "td" and self._row:
            self._text = []

    def handle_data(self, data):
        self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._row:
            self._cells.append(" ".join("".join(self._text).split()))
        elif tag == "tr" and self._row:
            self.stage_rows[self._row] = self._cells
            self._row = None


def decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def check_self_contained(text: str) -> Page:
    page = Page(text)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert all(href.startswith("#") for tag, href in page.links if tag == "a")
    for img in page.images:  # every image is embedded and decodes as a real PNG
        im = decode(img["src"])
        assert im.width > 0 and im.height > 0
    assert "url(" not in text  # no CSS resource either
    return page


# ---------------------------------------------------------------- a real run (SR disabled: fast)

PIPELINE = """
[inputs]
hr = "hr"
real_lr = "lr"
test_hr = "test"

[degrade]
method = "dsgan"
preset = "tiny"
[degrade.config.data]
hr_crop = 32
val_fraction = 0.2
[degrade.config.model]
features = 8
res_blocks = 1
d_features = 8
[degrade.config.optim]
batch = 2
iters = 3

[sr]
enabled = false
"""


def test_report_of_a_real_run_without_sr(tmp_path):
    make_folder(tmp_path / "hr", 4, (64, 64), seed=1)
    make_folder(tmp_path / "lr", 5, (32, 32), seed=2)
    make_folder(tmp_path / "test", 2, (48, 40), seed=3)
    (tmp_path / "pipe.toml").write_text(PIPELINE)

    def go():
        run_pipeline(
            load_pipeline(tmp_path / "pipe.toml"),
            run_dir=tmp_path / "run",
            cache=tmp_path / "cache",
            run=RunOptions(device="cpu"),
        )
        return (tmp_path / "run" / "report.html").read_text()

    text = go()  # `srpipe run` writes the report at the end
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    page = check_self_contained(text)
    assert page.sections == SECTIONS
    rows = page.stage_rows
    assert list(rows)[:3] == ["degrade", "pairs", "test_pairs"]
    for name in ("degrade", "pairs", "test_pairs"):
        key, state = rows[name][1], rows[name][3]
        assert key == record["stages"][name]["key"][:12] and state == "ran"
    assert "adv" in rows["degrade"][4]  # the active losses
    assert "pairs: 4" in rows["pairs"][5] and "mode: SDSR" in rows["pairs"][5]
    later = ("sr_psnr", "sr_gan", "interpolate", "bicubic_pairs", "baseline_bicubic", "blind_pairs", "baseline_blind")
    for name in (*later, "upscale", "eval"):
        assert rows[name][3] == "not in this run"  # what is missing is said
    assert f"Not in this run: {', '.join(later)}, upscale, eval" in text
    assert "No learned kernel: the degrade stage used dsgan, which learns no explicit blur kernel" in text
    assert "No side-by-side on real LR: no upscale stage in this run" in text
    assert "No comparisons: no upscale stage in this run" in text
    assert "No metrics: no eval stage output in this run" in text
    assert "No alpha sweep: no eval stage output in this run" in text
    # the DSGAN grid of the last step and the degrade loss curves are there
    alts = [i["alt"] for i in page.images]
    assert [a for a in alts if a.startswith("DSGAN, step")] == ["DSGAN, step 3: bicubic LR | synthetic LR | real LR"]
    assert any(a.startswith("DSGAN degradation (degrade): ") and "d_real" in a for a in alts)
    degrade_entry = Path(record["stages"]["degrade"]["entry"])  # one real LR held out: degradation.json
    table = json.loads((degrade_entry / "degradation.json").read_text())
    assert "Source: degrade stage: held-out real LR" in text
    assert re.findall(r'data-metric="(\w+)"', text) == [r["metric"] for r in table["rows"]]

    text = go()  # nothing changed: every stage cached, and the report says so
    rows = Page(text).stage_rows
    assert [rows[n][3] for n in ("degrade", "pairs", "test_pairs")] == ["cached"] * 3


# ---------------------------------------------------------------- a fabricated full run (every stage)

SECTIONS = ["summary", "stages", "real", "learned", "realism", "samples", "sr", "metrics", "alpha", "losses"]

SR = {  # eval metrics.json "sr": distinctive values the page must show
    "bicubic": {
        "psnr_y": 24.5012,
        "ssim_y": 0.70011,
        "psnr_rgb": 23.1,
        "ssim_rgb": 0.69,
        "psnr_color": 40.0,
        "lpips": 0.4123,
    },
    "psnr": {
        "psnr_y": 26.7512,
        "ssim_y": 0.78123,
        "psnr_rgb": 25.2,
        "ssim_rgb": 0.77,
        "psnr_color": 41.0,
        "lpips": 0.3333,
    },
    "alpha_0.50": {
        "psnr_y": 26.1034,
        "ssim_y": 0.75,
        "psnr_rgb": 24.8,
        "ssim_rgb": 0.74,
        "psnr_color": 40.5,
        "lpips": 0.2511,
    },
    "gan": {"psnr_y": 25.2047, "ssim_y": 0.71, "psnr_rgb": 24.0, "ssim_rgb": 0.70, "psnr_color": 39.0, "lpips": 0.2009},
}
DEGRADATION = {
    "scale": 2,
    "counts": {"real": 3, "synthetic": 2, "bicubic": 2},
    "notes": ["a realism note"],
    "config": {},
    "rows": [
        {
            "metric": "kid",
            "label": "KID on 16x16 patches (mean; std over subsets)",
            "unit": "",
            "real": 0.0,
            "synthetic": 0.0123,
            "bicubic": 0.0456,
            "std": {"synthetic": 0.001, "bicubic": 0.002},
            "synthetic_distance": 0.0123,
            "bicubic_distance": 0.0456,
            "closer": "synthetic",
        },
        {
            "metric": "noise",
            "label": "noise sigma in flat regions (R, G, B)",
            "unit": "8-bit levels",
            "real": [2.5, 2.25, 2.75],
            "synthetic": [2.0, 2.0, 2.5],
            "bicubic": [0.5, 0.5, 0.5],
            "synthetic_distance": 0.3333,
            "bicubic_distance": 2.0,
            "closer": "synthetic",
        },
        {
            "metric": "hf_spectrum",
            "label": "log power spectrum, 0.25-0.5 cycles/px",
            "unit": "dB",
            "real": -31.5,
            "synthetic": -33.0,
            "bicubic": -45.25,
            "synthetic_distance": 1.5,
            "bicubic_distance": 13.75,
            "closer": "synthetic",
        },
        {
            "metric": "blockiness",
            "label": "JPEG 8x8 grid strength (1 = none)",
            "unit": "ratio",
            "real": 1.3,
            "synthetic": 1.01,
            "bicubic": 1.0,
            "synthetic_distance": 0.29,
            "bicubic_distance": 0.3,
            "closer": "tie",
        },
        {
            "metric": "color",
            "label": "per-channel value distribution (Wasserstein-1)",
            "unit": "8-bit levels",
            "real": [120.0, 110.0, 100.0],
            "synthetic": [125.0, 111.0, 99.0],
            "bicubic": [121.0, 110.0, 100.0],
            "synthetic_distance": 2.5,
            "bicubic_distance": 0.5,
            "closer": "bicubic",
        },
    ],
}
BASELINE_SR = {  # the same recipe on bicubic and blind pairs: on srpipe's own test pairs they lose
    "baseline_bicubic_psnr": {
        "psnr_y": 25.9001,
        "ssim_y": 0.74,
        "psnr_rgb": 24.6,
        "ssim_rgb": 0.73,
        "psnr_color": 40.2,
        "lpips": 0.3801,
    },
    "baseline_bicubic_gan": {
        "psnr_y": 24.9002,
        "ssim_y": 0.70,
        "psnr_rgb": 23.9,
        "ssim_rgb": 0.69,
        "psnr_color": 39.1,
        "lpips": 0.2702,
    },
    "baseline_blind_psnr": {"psnr_y": 25.5003, "ssim_y": 0.72, "lpips": 0.3902},
    "baseline_blind_gan": {"psnr_y": 24.6004, "ssim_y": 0.69, "lpips": 0.2803},
}
REAL_PAIRS_SR = {  # on real pairs: srpipe's PSNR model wins by 0.31 dB, its GAN model loses on LPIPS
    "bicubic": {"psnr_y": 23.0, "lpips": 0.5},
    "psnr": {"psnr_y": 24.41, "lpips": 0.40},
    "baseline_bicubic_psnr": {"psnr_y": 24.10, "lpips": 0.41},
    "baseline_blind_psnr": {"psnr_y": 24.50, "lpips": 0.45},
    "gan": {"psnr_y": 23.80, "lpips": 0.33},
    "baseline_bicubic_gan": {"psnr_y": 23.70, "lpips": 0.31},
    "baseline_blind_gan": {"psnr_y": 23.10, "lpips": 0.35},
}
REAL_NAMES = ("web_1", "web_2")  # held-out real LR images
REAL_MODELS = (
    "psnr",
    "baseline_bicubic_psnr",
    "baseline_blind_psnr",
    "gan",
    "baseline_bicubic_gan",
    "baseline_blind_gan",
)
KERNEL_JSON = {  # what a pdm run writes (srpipe.degrade.pdm_train): distinctive values the page must show
    "method": "pdm",
    "scale": 2,
    "size": 10,
    "stats": {
        "centre": [0.0123, -0.0456],
        "sigma_major": 1.4321,
        "sigma_minor": 0.9876,
        "width": 1.1893,
        "anisotropy": 1.4501,
        "angle_deg": 33.3,
        "negative_mass": 0.0421,
    },
    "draw_stats": [{"width": 1.0512}, {"width": 1.3087}, {"width": 1.2}],
    "noise_sigma": [3.21, 3.05, 3.47],
    "jpeg": {
        "kind": "qtables",
        "qualities": [70, 75, 80],
        "qmin": 70,
        "qmax": 80,
        "n_jpeg": 3,
        "n_total": 3,
        "note": "",
    },
}
NAMES = ("img_00", "img_01")
HR_SIZE = (48, 40)  # w, h; x2
TEXTURE = (26, 18, 20)  # x, y, side of the only textured square in the HR images (where the crop must land)


def smooth(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((max(2, h // 8), max(2, w // 8), 3)) * 255).astype(np.uint8))
    return np.asarray(small.resize((w, h), Image.BICUBIC)).copy()


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def write_log(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["step", "time", *fields])
        w.writeheader()
        w.writerows(rows)


def grid(rows: int, tile: int, seed: int) -> np.ndarray:
    """A make_grid-like image: `rows` x 3 tiles with 2 px white padding."""
    out = np.full((rows * (tile + 2) + 2, 3 * (tile + 2) + 2, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(3):
            y, x = 2 + r * (tile + 2), 2 + c * (tile + 2)
            out[y : y + tile, x : x + tile] = smooth(tile, tile, seed + 3 * r + c)
    return out


def fabricate_run(root: Path, *, with_note: str = "", baseline: bool = False, method: str = "dsgan") -> Path:
    """A run folder and cache with the documented layout of a full pipeline run (a pdm one: with its kernel)."""
    cache, run_dir = root / "cache", root / "run"
    stages, entries = {}, {}

    def entry(
        stage: str,
        seconds: float,
        cached: bool,
        describe: str = "",
        summary: dict | None = None,
        params: dict | None = None,
    ) -> Path:
        key = hashlib.sha256(stage.encode()).hexdigest()
        e = cache / stage / key[:2] / key
        e.mkdir(parents=True)
        (e / "manifest.json").write_text(
            json.dumps(
                {
                    "key": key,
                    "stage": stage,
                    "seconds": seconds,
                    "outputs": [],
                    "summary": summary or {},
                    "describe": describe,
                }
            )
        )
        stages[stage] = {
            "key": key,
            "entry": str(e),
            "version": 1,
            "params": params or {},
            "inputs": {},
            "describe": describe,
            "cached": cached,
            "seconds": seconds,
        }
        entries[stage] = e
        return e

    d = entry(
        "degrade",
        125.0,
        True,
        f"{method}: color, adv, perceptual",
        {"method": method, "active_losses": ["color", "adv"]},
        params={"method": method},
    )
    if method == "pdm":
        save(d / "kernel.png", grid(1, 40, 3))
        (d / "kernel.json").write_text(json.dumps(KERNEL_JSON))
    write_log(
        d / "log.csv",
        ["lr", "d_real", "d_fake", "color", "adv", "perceptual", "g_total"],
        [
            {
                "step": s,
                "time": s / 10,
                "lr": 2e-4,
                "d_real": 0.5 + s / 100,
                "d_fake": -0.2,
                "color": 1 / s,
                "adv": 0.7,
                "perceptual": "",
                "g_total": 1 + 1 / s,
            }
            for s in (1, 10, 20)
        ],
    )
    save(d / "samples" / "step_00000001.png", grid(2, 16, 1))
    save(d / "samples" / "step_00000020.png", grid(2, 16, 7))
    (d / "split.json").write_text(json.dumps({"train": ["a.png"], "held_out": ["b.png"]}))
    for stage in ("pairs", "test_pairs"):
        e = entry(stage, 3.5, True, summary={"pairs": 2, "mode": "SDSR"}, params={"cleanup_factor": 1})
        for i, n in enumerate(NAMES):
            hr = smooth(*HR_SIZE, seed=10 + i)
            if stage == "test_pairs":  # flat HR except one textured square
                hr[:] = 128
                x, y, c = TEXTURE
                hr[y : y + c, x : x + c] = np.random.default_rng(i).integers(0, 255, (c, c, 3))
            save(e / "hr" / f"{n}.png", hr)
            save(
                e / "lr" / f"{n}.png",
                np.asarray(Image.fromarray(hr).resize((HR_SIZE[0] // 2, HR_SIZE[1] // 2), Image.BICUBIC)),
            )
        (e / "pairs.json").write_text(
            json.dumps(
                {
                    "scale": 2,
                    "mode": "SDSR",
                    "pairs": [{"name": n, "hr": f"hr/{n}.png", "lr": f"lr/{n}.png"} for n in NAMES],
                }
            )
        )
    for stage, phase, fields in (
        ("sr_psnr", "psnr", ["lr", "l_pix", "g_total", "val_psnr_y", "val_ssim_y", "val_lpips"]),
        ("sr_gan", "gan", ["lr", "l_pix", "l_percep", "l_adv", "d_loss", "g_total", "val_psnr_y"]),
    ):
        e = entry(
            stage,
            60.0 if phase == "psnr" else 7300.0,
            False,
            "L1" if phase == "psnr" else "L1 x0.01, VGG19 conv5_4 x1, RaGAN x0.005",
            {"weights": {phase: f"{phase}.safetensors"}},
        )
        (e / f"{phase}.safetensors").write_bytes(b"stand-in")
        write_log(
            e / f"log_{phase}.csv",
            fields,
            [
                {"step": s, "time": s, **{f: (1 / s if f != "val_psnr_y" else 20 + s) for f in fields}}
                for s in (1, 5, 10)
            ],
        )
        save(e / "samples" / f"{phase}_00000010.png", grid(3, 24, 20))
    e = entry("interpolate", 0.2, False, summary={"models": ["alpha_0.50.safetensors"]}, params={"alphas": [0.5]})
    (e / "alpha_0.50.safetensors").write_bytes(b"stand-in")
    sr = {**SR, **(BASELINE_SR if baseline else {})}
    if baseline:
        for kind in ("bicubic", "blind"):
            entry(f"{kind}_pairs", 0.5, False, summary={"pairs": 2, "mode": kind})
            entry(
                f"baseline_{kind}",
                70.0,
                False,
                f"the sr recipe on {kind} pairs",
                {"weights": {"psnr": "psnr.safetensors"}},
            )
    up = entry("upscale", 2.0, False, summary={"models": list(sr)}, params={"tile": 128, "scale": 2})
    if baseline:  # the held-out real LR and every model's output on it (the LR bicubic-enlarged)
        for k, (m, _) in enumerate([("lr", None), ("bicubic", None), *[(m, None) for m in REAL_MODELS]]):
            for n in REAL_NAMES:
                lr = smooth(20, 16, seed=50 + REAL_NAMES.index(n))
                lr[4:12, 6:14] = np.random.default_rng(k).integers(0, 255, (8, 8, 3)) if m != "lr" else lr[4:12, 6:14]
                img = lr if m == "lr" else np.asarray(Image.fromarray(lr).resize((40, 32), Image.BICUBIC))
                save(up / "real" / "held_out_real" / m / f"{n}.png", img)
    for k, m in enumerate(sr):
        for n in NAMES:
            lr = Image.open(entries["test_pairs"] / "lr" / f"{n}.png")
            save(
                up / m / f"{n}.png",
                np.asarray(lr.resize(HR_SIZE, [Image.BICUBIC, Image.NEAREST, Image.BILINEAR, Image.LANCZOS][k % 4])),
            )
    ev = entry("eval", 4.0, False, params={"scale": 2, "fid": True})
    per_image = {
        m: [{"name": n, **{k: v + 0.01 * i for k, v in row.items()}} for i, n in enumerate(NAMES)]
        for m, row in sr.items()
    }
    m = {
        "sr": sr,
        "degradation": DEGRADATION,
        "per_image": per_image,
        "notes": ["an eval note"] + ([with_note] if with_note else []),
    }
    if baseline:
        real_sr = {k: sr[k] for k in ("bicubic", *REAL_MODELS)}
        m["real_pairs"] = {
            "sr": REAL_PAIRS_SR,
            "per_image": {k: [{"name": "r0"}, {"name": "r1"}, {"name": "r2"}] for k in real_sr},
        }
        m["held_out_real"] = [f"{n}.png" for n in REAL_NAMES]
    (ev / "metrics.json").write_text(json.dumps(m))
    run_dir.mkdir()
    (run_dir / "run.json").write_text(
        json.dumps({"pipeline": str(root / "demo.toml"), "cache": str(cache), "srpipe": "0.1.0", "stages": stages})
    )
    return run_dir


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> tuple[Path, str]:
    run_dir = fabricate_run(tmp_path_factory.mktemp("full"), with_note="<script>alert('x')</script> & more")
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    return path, path.read_text()


def test_full_report_sections_tables_and_values(full_report):
    _, text = full_report
    page = check_self_contained(text)
    assert page.sections == SECTIONS
    assert "No side-by-side on real LR: no baseline stage in this run ([baseline] kinds = [])" in text
    assert page.tables == ["stages", "realism", "metrics"] + ["per-image"] * 6
    assert (
        "srpipe report: demo" in text
        and "Not in this run: bicubic_pairs, baseline_bicubic, blind_pairs, baseline_blind. " in text
    )

    rows = page.stage_rows
    assert list(rows) == [
        "degrade",
        "pairs",
        "test_pairs",
        "sr_psnr",
        "sr_gan",
        "interpolate",
        "upscale",
        "eval",
        "bicubic_pairs",
        "baseline_bicubic",
        "blind_pairs",
        "baseline_blind",
    ]  # ran stages first, then those not in this run
    assert rows["baseline_blind"][3] == "not in this run"
    assert rows["degrade"][1] == hashlib.sha256(b"degrade").hexdigest()[:12]
    assert rows["degrade"][2:4] == ["2 min 05 s", "cached"] and rows["sr_gan"][2:4] == ["2 h 01 min", "ran"]
    assert rows["sr_gan"][4] == "L1 x0.01, VGG19 conv5_4 x1, RaGAN x0.005"
    assert rows["sr_psnr"][5] == "weights: psnr.safetensors" and rows["pairs"][5] == "pairs: 2; mode: SDSR"

    # the headline answers "is it working"
    assert (
        "Test pairs made by srpipe's own generator (fit to the learned degradation, not real-world quality): "
        "Best PSNR-Y: PSNR model (α 0) 26.75 dB vs bicubic 24.50 dB (+2.25 dB: beats bicubic)"
    ) in html.unescape(text)
    assert "Lowest LPIPS: GAN model (α 1) 0.2009" in text
    assert "closer to real LR than bicubic LR on 3 of 5 statistics" in text

    # realism table: values, lists per channel, KID std, who is closer
    realism = re.search(r'<table class="realism">(.*?)</table>', text, re.S).group(1)
    assert [m for m in re.findall(r'data-metric="(\w+)"', realism)] == [
        "kid",
        "noise",
        "hf_spectrum",
        "blockiness",
        "color",
    ]
    assert "2.5 / 2.25 / 2.75" in realism and "0.0123 ± 0.001" in realism and "13.75" in realism
    assert re.findall(r'<span class="badge (\w+)">', realism) == ["synthetic"] * 3 + ["tie", "bicubic"]
    assert "a realism note" in text

    # metric table: models ordered bicubic, then by alpha; best per column marked; gain vs bicubic
    metrics = re.search(r'<table class="metrics">(.*?)</table>', text, re.S).group(1)
    models = re.findall(r"<tr><td>([^<]+)</td>", metrics)
    assert models == ["bicubic", "PSNR model (α 0)", "interpolated α 0.50", "GAN model (α 1)"]
    assert re.findall(r'class="num best">([^<]+)<', metrics) == [
        "26.75",
        "0.7812",
        "25.20",
        "0.7700",
        "41.00",
        "0.2009",
    ]
    assert "+2.25" in metrics and "+0.70" in metrics and "2.2500" not in metrics
    assert "FID" not in metrics  # no FID values in this run: no empty column

    # comparisons: one block per test image, crop on the textured square, every model in order
    blocks = re.findall(r'<div class="compare" data-image="(\w+)">', text)
    assert blocks == list(NAMES)
    x, y, c = TEXTURE
    assert f"48×40, crop {c}×{c} at ({x}, {y}), ×6" in text
    labels = [i["alt"].split(": ", 1)[1] for i in page.images if i["alt"].startswith("img_00: ")]
    assert labels == [
        "LR input",
        "bicubic",
        "PSNR model (α 0)",
        "interpolated α 0.50",
        "GAN model (α 1)",
        "HR (ground truth)",
    ]
    crops = {i["alt"]: decode(i["src"]) for i in page.images if i["alt"].startswith("img_00")}
    assert crops["img_00: HR (ground truth)"].size == (c * 6, c * 6) == crops["img_00: LR input"].size
    record = json.loads((full_report[0].parent / "run.json").read_text())
    hr = np.asarray(Image.open(Path(record["stages"]["test_pairs"]["entry"]) / "hr" / "img_00.png").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(crops["img_00: HR (ground truth)"])[::6, ::6], hr[y : y + c, x : x + c])
    assert "26.76 dB / 0.3433" in text  # per-image caption of img_01, PSNR model

    # plots and grids
    alts = [i["alt"] for i in page.images]
    assert [a for a in alts if ", step " in a] == [
        "DSGAN, step 1: bicubic LR | synthetic LR | real LR",
        "DSGAN, step 20: bicubic LR | synthetic LR | real LR",
        "ESRGAN PSNR phase, step 10: bicubic | SR | HR",
        "ESRGAN GAN phase, step 10: bicubic | SR | HR",
    ]
    losses = {a.split(":")[0]: a.split(": ")[1] for a in alts if "(degrade)" in a or "(sr_" in a}
    assert losses == {
        "DSGAN degradation (degrade)": "d_real, d_fake, color, adv, g_total",  # perceptual empty
        "ESRGAN PSNR phase (sr_psnr)": "l_pix, g_total, val_psnr_y, val_ssim_y, val_lpips",
        "ESRGAN GAN phase (sr_gan)": "l_pix, l_percep, l_adv, d_loss, g_total, val_psnr_y",
    }
    sweep = decode(next(i["src"] for i in page.images if i["alt"] == "metrics against alpha"))
    assert sweep.width > 2 * sweep.height and np.asarray(sweep).std() > 5  # two panels: PSNR-Y and LPIPS

    # autoescape: run data never becomes markup
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in text


def test_report_compares_srpipe_and_bicubic_pair_models(tmp_path):
    text = write_report(fabricate_run(tmp_path, baseline=True)).read_text()
    page = check_self_contained(text)
    rows = page.stage_rows
    assert list(rows)[5:10] == ["interpolate", "bicubic_pairs", "baseline_bicubic", "blind_pairs", "baseline_blind"]
    assert rows["baseline_blind"][3] == "ran"
    headline = re.search(r'<ul class="headline">(.*?)</ul>', text, re.S).group(1)
    items = [html.unescape(" ".join(i.split())) for i in re.findall(r"<li>(.*?)</li>", headline, re.S)]
    assert items[0] == (
        "Held-out real LR of the target domain (2 images, no ground truth): side-by-side crops of "
        "srpipe's models and the bicubic-pair and the blind-pair models below; their training inputs: srpipe's "
        "synthetic LR is closer to the real LR than bicubic LR on 3 of 5 realism statistics."
    )
    assert items[1] == (
        "Real pairs (ground truth, 3 images), PSNR-Y: PSNR models: srpipe 24.41 dB vs bicubic-pair 24.10 dB "
        "(+0.31: srpipe better), vs blind-pair 24.50 dB (-0.09: blind-pair better); GAN models: srpipe 23.80 dB "
        "vs bicubic-pair 23.70 dB (+0.10: srpipe better), vs blind-pair 23.10 dB (+0.70: srpipe better)."
    )
    assert items[2] == (
        "Real pairs (ground truth, 3 images), LPIPS: PSNR models: srpipe 0.4000 vs bicubic-pair 0.4100 (-0.0100: "
        "srpipe better), vs blind-pair 0.4500 (-0.0500: srpipe better); GAN models: srpipe 0.3300 vs bicubic-pair "
        "0.3100 (+0.0200: bicubic-pair better), vs blind-pair 0.3500 (-0.0200: srpipe better)."
    )
    assert all("fit to the learned degradation" in i for i in items[3:]) and len(items) == 6
    assert (
        "PSNR-Y against the baseline models: PSNR models: srpipe 26.75 dB vs bicubic-pair 25.90 dB (+0.85: srpipe "
        "better), vs blind-pair 25.50 dB (+1.25: srpipe better)" in items[4]
    )
    # the real-pairs table and the test-pairs table both list the baseline models, after srpipe's
    tables = re.findall(r'<table class="metrics( real-pairs)?">(.*?)</table>', text, re.S)
    assert [t[0] for t in tables] == [" real-pairs", ""]
    models = [re.findall(r"<tr><td>([^<]+)</td>", t[1]) for t in tables]
    baselines = ["bicubic-pair PSNR model", "bicubic-pair GAN model", "blind-pair PSNR model", "blind-pair GAN model"]
    assert models[0] == ["bicubic", "PSNR model (α 0)", "GAN model (α 1)", *baselines]
    assert models[1][-4:] == baselines
    # side-by-side: per held-out real image, the LR and the same crop of both models' outputs
    assert re.findall(r'data-real-image="(\w+)"', text) == list(REAL_NAMES)
    alts = [i["alt"] for i in page.images if i["alt"].startswith("real web_1: ")]
    assert [a.split(": ", 1)[1] for a in alts] == [
        "LR input",
        "bicubic",
        "srpipe PSNR model",
        "bicubic-pair PSNR model",
        "blind-pair PSNR model",
        "srpipe GAN model",
        "bicubic-pair GAN model",
        "blind-pair GAN model",
    ]
    crops = {a: decode(i["src"]) for i in page.images for a in [i["alt"]] if a in alts}
    assert len({c.size for c in crops.values()}) == 1
    # the crop lands on the one textured square of the outputs (x 12-28, y 8-24 at x2)
    assert "crop 16×16 at (12, 8), ×8" in text
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    out = np.asarray(
        Image.open(Path(record["stages"]["upscale"]["entry"]) / "real" / "held_out_real" / "gan" / "web_1.png").convert(
            "RGB"
        )
    )
    np.testing.assert_array_equal(np.asarray(crops["real web_1: srpipe GAN model"])[::8, ::8], out[8:24, 12:28])


def test_partial_and_broken_runs(tmp_path):
    with pytest.raises(SrpipeError, match="no run.json"):
        write_report(tmp_path)
    run_dir = fabricate_run(tmp_path)
    record = json.loads((run_dir / "run.json").read_text())
    shutil.rmtree(record["stages"]["upscale"]["entry"])  # e.g. removed by `srpipe gc`
    metrics = Path(record["stages"]["eval"]["entry"]) / "metrics.json"
    m = json.loads(metrics.read_text())
    worse = {**SR["gan"], "psnr_y": 23.0}
    metrics.write_text(json.dumps({**m, "degradation": None, "sr": {"bicubic": SR["bicubic"], "gan": worse}}))
    text = write_report(run_dir).read_text()
    check_self_contained(text)
    assert Page(text).stage_rows["upscale"][3] == "cache entry missing (gc?)"
    assert "Cache entries no longer on disk (removed by <code>srpipe gc</code>?): upscale;" in text
    assert "No comparisons: no upscale stage in this run" in text
    assert "No degradation realism table: eval found no held-out real LR" in text
    assert "GAN model (α 1) 23.00 dB vs bicubic 24.50 dB (-1.50 dB: does not beat bicubic)" in text
    assert "No alpha sweep: needs at least two" in text


def test_report_command(tmp_path):
    from srpipe.cli import cli

    run_dir = fabricate_run(tmp_path)
    result = CliRunner().invoke(cli, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output and (run_dir / "report.html").stat().st_size > 10_000


def test_detail_window_and_model_order():
    g = np.zeros((40, 48))
    g[10:22, 30:42] = np.random.default_rng(0).random((12, 12)) * 255
    assert detail_window(g, 12, 1) == (10, 30)
    assert detail_window(g, 12, 2) == (10, 30)  # on the scale grid
    assert detail_window(np.zeros((8, 8)), 8, 2) == (0, 0)
    assert detail_window(np.zeros((4, 4)), 8, 2) == (0, 0)  # smaller than the window
    assert model_order(["gan", "x", "alpha_0.80", "bicubic", "psnr", "alpha_0.25"]) == [
        "bicubic",
        "psnr",
        "alpha_0.25",
        "alpha_0.80",
        "gan",
        "x",
    ]
    names = ["baseline_blind_gan", "gan", "baseline_bicubic_psnr", "psnr", "baseline_blind_psnr", "bicubic"]
    assert model_order(names) == [
        "bicubic",
        "psnr",
        "gan",
        *sorted(names[::2], key=lambda n: ("blind" in n, "gan" in n)),
    ]
    assert model_label("baseline_blind_gan") == "blind-pair GAN model"
    assert model_label("baseline_psnr") == "bicubic-pair PSNR model"  # run folders from before [baseline] kinds
    # real LR: bicubic, then the order the upscale stage runs them in, baselines by kind
    real = ["baseline_blind_gan", "gan", "baseline_zoo_psnr", "baseline_bicubic_psnr", "psnr", "bicubic", "alpha_0.50"]
    assert real_order(real) == [
        "bicubic",
        "psnr",
        "baseline_bicubic_psnr",
        "baseline_zoo_psnr",
        "gan",
        "baseline_blind_gan",
    ]


# ---------------------------------------------------------------- headless Chromium

CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({alt: i.alt, w: i.naturalWidth, complete: i.complete}));
  const external = performance.getEntriesByType("resource").map(r => r.name).filter(n => !n.startsWith("data:"));
  const pre = document.createElement("pre");
  pre.id = "srpipe-check";
  pre.textContent = JSON.stringify({imgs, external, height: document.body.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not found: `make test` installs it, or run `apt-get install -y chromium` (Debian)")


def run_chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",  # root in containers has no usable sandbox
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
    ]
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp)}
    )


@pytest.mark.slow
def test_report_renders_in_headless_chromium(full_report, tmp_path):
    exe = chromium()
    path, text = full_report
    n_images = len(Page(text).images)
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", CHECK + "</body>"))
    r = run_chromium(exe, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="srpipe-check">(.*?)</pre>', r.stdout, re.S)
    assert found, f"no check result from Chromium (rc {r.returncode}): {r.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert len(result["imgs"]) == n_images >= 20
    assert [i["alt"] for i in result["imgs"] if not (i["complete"] and i["w"] > 0)] == []
    assert result["external"] == [] and result["height"] > 2000

    shot = tmp_path / "report.png"
    r = run_chromium(exe, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", path.as_uri())
    assert shot.is_file(), f"no screenshot (rc {r.returncode}): {r.stderr[-2000:]}"
    im = np.asarray(Image.open(shot).convert("RGB"))
    assert im.shape == (2000, 1280, 3)
    assert im.std() > 20 and len(np.unique(im.reshape(-1, 3), axis=0)) > 500  # text, tables, images: not blank
    if os.environ.get("SRPIPE_REPORT_SHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["SRPIPE_REPORT_SHOT"])


def test_report_shows_the_learned_kernel_of_a_pdm_run_only(tmp_path):
    run_dir = fabricate_run(tmp_path / "pdm", baseline=True, method="pdm")
    text = write_report(run_dir).read_text()
    page = check_self_contained(text)
    assert page.sections == SECTIONS
    record = json.loads((run_dir / "run.json").read_text())
    picture = Path(record["stages"]["degrade"]["entry"]) / "kernel.png"
    [img] = [i for i in page.images if i["alt"] == "learned blur kernel: mean and draws"]
    assert base64.b64decode(img["src"].split(",", 1)[1]) == picture.read_bytes()  # the run's own picture
    table = re.search(r'<table class="kernel-stats">(.*?)</table>', text, re.S).group(1)
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td>", table))
    assert cells["width √(σ_major · σ_minor)"] == "1.19" and cells["anisotropy σ major / σ minor"] == "1.45"
    assert cells["σ major / σ minor"] == "1.43 / 0.99" and cells["angle of the major axis"] == "33.3"
    assert cells["centre of mass offset (dy, dx)"] == "0.01 / -0.05" and cells["negative mass"] == "0.0421"
    assert cells["width over the draws"] == "1.05 – 1.31" and cells["noise σ"] == "3.21 / 3.05 / 3.47"
    assert cells["JPEG stage"].startswith("3/3 JPEG files, quality 70-80 (median 75)")
    assert "bicubic-like Gaussian: 0.80" in table  # PDM's starting sigma at x2
    assert (
        "Learned degradation (pdm, x2): blur kernel width 1.19 HR px, anisotropy 1.45; noise σ 3.21 / 3.05 / 3.47 levels"
        in html.unescape(text)
    )

    text = write_report(fabricate_run(tmp_path / "dsgan", baseline=True)).read_text()
    assert "kernel-stats" not in text and "learned blur kernel" not in text
    assert "No learned kernel: the degrade stage used dsgan, which learns no explicit blur kernel" in text
