"""`srpipe eval`, `srpipe eval-fid` and `srpipe eval-degradation` through the real entry point."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from tests.helpers import make_folder
from srpipe.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def sr_gt(tmp_path):
    gt = make_folder(tmp_path / "gt", 3, (48, 48), seed=4)
    sr = tmp_path / "sr"
    sr.mkdir()
    rng = np.random.default_rng(0)
    for p in sorted(gt.iterdir()):
        a = cv2.imread(str(p)).astype(np.float32)
        cv2.imwrite(str(sr / p.name), np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8))
    return sr, gt


def test_eval_json_csv_and_table(sr_gt, tmp_path, capsys, torch_home):
    from srpipe.eval import metrics
    from srpipe.io.imageio import read_image

    sr, gt = sr_gt
    code, out, err = run(["eval", "--sr", str(sr), "--gt", str(gt), "--scale", "2", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [r["name"] for r in data["images"]] == ["img_00", "img_01", "img_02"]
    a, b = read_image(sr / "img_02.png")[0], read_image(gt / "img_02.png")[0]
    assert data["images"][2]["psnr_y"] == pytest.approx(metrics.psnr(a, b, crop_border=2).item())
    assert data["config"]["crop_border"] == 2 and data["images"][0]["lpips"] > 0
    assert data["summary"]["ssim_y"] == pytest.approx(np.mean([r["ssim_y"] for r in data["images"]]))

    csv_file = tmp_path / "rows.csv"
    code, out, err = run(
        ["eval", "--sr", str(sr), "--gt", str(gt), "--crop-border", "0", "--no-lpips", "--csv", str(csv_file)], capsys
    )
    assert code == 0, err
    rows = list(csv.DictReader(csv_file.open()))
    assert len(rows) == 3 and rows[0]["lpips"] == "" and float(rows[0]["psnr_y"]) > 20
    assert "PSNR-Y" in out and "mean over 3 images" in out and str(csv_file) in out.replace("\n", "")


def test_eval_identical_images_json_is_strict(sr_gt, capsys):
    _, gt = sr_gt
    code, out, _ = run(["eval", "--sr", str(gt), "--gt", str(gt), "--no-lpips", "--json"], capsys)
    assert code == 0
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["images"][0]["psnr_y"] is None and data["summary"]["ssim_y"] == pytest.approx(1.0)


def test_eval_lpips_missing_is_a_warning(sr_gt, capsys, empty_torch_home):
    sr, gt = sr_gt
    code, out, err = run(["eval", "--sr", str(sr), "--gt", str(gt), "--json"], capsys)
    assert code == 0
    assert "LPIPS skipped" in err and "alexnet-owt-7be5be79.pth" in err
    assert json.loads(out)["summary"]["lpips"] is None


def test_eval_errors(sr_gt, tmp_path, capsys):
    sr, gt = sr_gt
    (sr / "img_00.png").rename(sr / "renamed.png")
    code, _, err = run(["eval", "--sr", str(sr), "--gt", str(gt)], capsys)
    assert code == 1 and "unmatched images" in err and "renamed.png" in err and "img_00.png" in err
    assert "Traceback" not in err
    lr = make_folder(tmp_path / "lr", 3, (12, 12), seed=4)
    code, _, err = run(["eval", "--sr", str(lr), "--gt", str(gt), "--scale", "4"], capsys)
    assert code == 1 and "size mismatch" in err and "1/4 of GT" in err


def test_eval_fid_json_save_stats_and_cache(torch_home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE", str(tmp_path / "cache"))
    a = make_folder(tmp_path / "a", 4, (64, 64), seed=1)
    b = make_folder(tmp_path / "b", 4, (64, 64), seed=2)
    stats = tmp_path / "a.npz"
    code, out, err = run(["eval-fid", str(a), str(b), "--dims", "64", "--save-stats", str(stats), "--json"], capsys)
    assert code == 0, err
    first = json.loads(out)
    assert first["fid"] > 0 and first["kid_mean"] is not None and first["a"]["cached"] is False
    assert "rank-deficient" in err  # 4 samples, 64 dims: the warning goes to stderr
    assert set(np.load(stats).files) == {"mu", "sigma"}
    assert list((tmp_path / "cache" / "features").rglob("*.npz"))
    # second run: both sides from the cache; a stats file on one side gives the same FID
    code, out, _ = run(["eval-fid", str(b), str(stats), "--dims", "64", "--json"], capsys)
    second = json.loads(out)
    assert second["fid"] == pytest.approx(first["fid"], rel=1e-6) and second["b"]["kind"] == "stats"
    assert second["a"]["cached"] is True and second["kid_mean"] is None
    # patch mode and the rich table
    code, out, err = run(["eval-fid", str(a), str(b), "--dims", "64", "--patches", "2", "--patch-size", "32"], capsys)
    assert code == 0, err
    assert "FID" in out and "KID" in out and "2 random 32px crops" in out


def test_eval_fid_errors(tmp_path, capsys, empty_torch_home):
    a = make_folder(tmp_path / "a", 2, (32, 32), seed=1)
    code, _, err = run(["eval-fid", str(a), str(a), "--dims", "64", "--no-cache"], capsys)
    assert code == 1 and "pt_inception-2015-12-05-6726825d.pth" in err and "Traceback" not in err
    code, _, err = run(["eval-fid", str(a)], capsys)
    assert code == 2 and "--save-stats" in err
    code, _, err = run(["eval-fid", str(a), str(tmp_path / "nope")], capsys)
    assert code == 1 and "does not exist" in err


def _degraded_folders(tmp_path):
    rng = np.random.default_rng(0)

    def tex(seed):
        r = np.random.default_rng(seed)
        img = cv2.GaussianBlur(r.random((96, 96, 3)).astype(np.float32), (0, 0), 1.5)
        return np.clip(0.5 + 2.5 * (img - img.mean()), 0, 1)

    real, syn, hr = tmp_path / "real", tmp_path / "syn", tmp_path / "hr"
    for d in (real, syn, hr):
        d.mkdir()
    for i in range(3):
        for folder, seed in ((real, 10 + i), (hr, 20 + i)):
            img = tex(seed)
            if folder is real:
                img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
                img = np.clip(img + rng.normal(0, 6 / 255, img.shape), 0, 1)
            cv2.imwrite(str(folder / f"p{i}.png"), (img * 255).round().astype(np.uint8))
        h = tex(20 + i)
        low = np.clip(cv2.resize(h, (48, 48), interpolation=cv2.INTER_AREA) + rng.normal(0, 6 / 255, (48, 48, 3)), 0, 1)
        cv2.imwrite(str(syn / f"p{i}.png"), (low * 255).round().astype(np.uint8))
    return real, syn, hr


def test_eval_degradation(tmp_path, capsys):
    real, syn, hr = _degraded_folders(tmp_path)
    code, out, err = run(
        ["eval-degradation", "--real", str(real), "--synthetic", str(syn), "--hr", str(hr), "--no-inception", "--json"],
        capsys,
    )
    assert code == 0, err
    rep = json.loads(out)
    assert rep["scale"] == 2  # inferred from same-named synthetic/HR files
    rows = {r["metric"]: r for r in rep["rows"]}
    assert rows["noise"]["closer"] == "synthetic"  # both noisy at sigma 6, bicubic clean
    code, out, err = run(
        [
            "eval-degradation",
            "--real",
            str(real),
            "--synthetic",
            str(syn),
            "--hr",
            str(hr),
            "--no-inception",
            "--scale",
            "2",
        ],
        capsys,
    )
    assert code == 0 and "lower is closer" in out and "synthetic" in out


def test_eval_degradation_missing_weights_is_a_note(tmp_path, capsys, empty_torch_home):
    real, syn, hr = _degraded_folders(tmp_path)
    code, out, err = run(
        [
            "eval-degradation",
            "--real",
            str(real),
            "--synthetic",
            str(syn),
            "--hr",
            str(hr),
            "--patches",
            "1",
            "--patch-size",
            "32",
        ],
        capsys,
    )
    assert code == 0 and "KID/FID skipped" in err and "pt_inception" in err
