"""FID/KID against hand computations, agreement with pytorch-fid, patch mode, cache, stats files.

Inception runs use the stand-in weights (torch_home) and `dims=64/192` (earlier Inception blocks):
the code path is the one of 2048-d features, but scipy's `sqrtm` of a 2048x2048 matrix alone takes
~25 s on two CPU cores, too slow for the suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import make_folder
from srpipe.eval import fid
from srpipe.errors import SrpipeError
from srpipe.engine.weights import MissingWeightsError


def _features(n, d, seed, shift=0.0):
    """n samples of one correlated Gaussian in d dims (the same for every seed), shifted by `shift`."""
    mix = np.random.default_rng(1234).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mix + shift


# ---------------------------------------------------------------- metrics on features


def _fid_by_hand(x, y):
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), via symmetric eigh."""
    m1, m2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)

    def sqrt_psd(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r1 = sqrt_psd(s1)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrt_psd(r1 @ s2 @ r1)))


def test_fid_matches_hand_computation():
    x, y = _features(300, 8, 0), _features(250, 8, 1, shift=0.3)
    assert fid.fid(x, y) == pytest.approx(_fid_by_hand(x, y), rel=1e-7)
    assert abs(fid.fid(x, x)) < 1e-8
    far = _features(250, 8, 1, shift=1.0)
    assert fid.fid(x, far) == pytest.approx(_fid_by_hand(x, far), rel=1e-7)
    assert fid.fid(x, far) > 4 > 1 > fid.fid(x, _features(250, 8, 1))  # mean term 8 * 1.0^2 dominates
    # stats: pytorch-fid's mean / np.cov(rowvar=False)
    mu, sigma = fid.stats(x)
    assert np.allclose(mu, x.mean(0)) and np.allclose(sigma, np.cov(x.T))


def _kid_by_hand(x, y):
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_matches_hand_computation():
    x, y = _features(9, 5, 2), _features(7, 5, 3, shift=0.5)
    mean, std = fid.kid(x, y, subset_size=100)  # subsets larger than the sets: one exact evaluation
    assert mean == pytest.approx(_kid_by_hand(x, y), rel=1e-10) and std == 0.0
    # with subsets, each is an exact KID of a random subset; the mean is their average
    x2, y2 = _features(40, 5, 4), _features(40, 5, 5, shift=0.5)
    mean, std = fid.kid(x2, y2, subsets=5, subset_size=10, seed=3)
    rng = np.random.default_rng(3)
    vals = []
    for _ in range(5):
        ix, iy = rng.choice(40, 10, replace=False), rng.choice(40, 10, replace=False)
        vals.append(_kid_by_hand(x2[ix], y2[iy]))
    assert mean == pytest.approx(np.mean(vals), rel=1e-10) and std == pytest.approx(np.std(vals), rel=1e-9)


def test_kid_is_unbiased():
    """Two samples of one distribution: KID averages to 0, where the biased MMD^2 stays positive."""
    d = 8
    pairs = [(_features(20, d, 100 + 2 * i), _features(20, d, 101 + 2 * i)) for i in range(400)]
    values = np.array([fid.kid(x, y, subset_size=100)[0] for x, y in pairs])
    se = values.std() / np.sqrt(len(values))
    assert abs(values.mean()) < 3 * se

    def biased(x, y):  # the V-statistic: i == j terms included
        return ((x @ x.T / d + 1) ** 3).mean() + ((y @ y.T / d + 1) ** 3).mean() - 2 * ((x @ y.T / d + 1) ** 3).mean()

    assert np.mean([biased(x, y) for x, y in pairs]) > 10 * se
    different = fid.kid(_features(20, d, 7), _features(20, d, 8, shift=1.0), subset_size=100)[0]
    assert different > 50 * se


def test_small_sample_errors_and_warning():
    with pytest.raises(SrpipeError, match="at least 2"):
        fid.kid(_features(1, 4, 0), _features(5, 4, 1))
    with pytest.raises(SrpipeError, match="at least 2"):
        fid.stats(_features(1, 4, 0))
    assert "rank-deficient" in fid.small_sample_warning(10, 2048, "x")
    assert fid.small_sample_warning(3000, 2048, "x") is None


# ---------------------------------------------------------------- Inception on folders


@pytest.fixture
def folders(tmp_path):
    a = make_folder(tmp_path / "a", 5, (64, 64), seed=11)
    b = make_folder(tmp_path / "b", 5, (64, 64), seed=12)
    return a, b


@pytest.mark.slow
def test_whole_image_fid_equals_pytorch_fid(torch_home, folders, tmp_path):
    from pytorch_fid.fid_score import calculate_fid_given_paths

    a, b = folders
    theirs = calculate_fid_given_paths([str(a), str(b)], 50, "cpu", 192, num_workers=0)
    ours = fid.compare(a, b, fid.FeatureSpec(dims=192), cache=tmp_path / "cache")
    assert ours["fid"] == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)
    assert ours["fid"] > 0.01  # the stand-in network separates the two folders
    assert ours["a"]["count"] == 5 and ours["kid_mean"] is not None
    assert any("rank-deficient" in w for w in ours["warnings"])  # 5 samples, 192 dims


def test_fid_of_a_folder_with_itself_is_zero(torch_home, folders, tmp_path):
    a, _ = folders
    res = fid.compare(a, a, fid.FeatureSpec(dims=64), cache=tmp_path / "cache")
    assert abs(res["fid"]) < 1e-6
    assert res["b"]["cached"]  # the second side reused the first side's features


def test_listing_and_mixed_sizes(torch_home, tmp_path):
    d = make_folder(tmp_path / "d", 2, (64, 64), seed=1)
    make_folder(d, 2, (48, 40), seed=2, prefix="small")
    (d / "img_00.png").rename(d / "UPPER.PNG")  # pytorch-fid's case-sensitive glob would skip this
    (d / "notes.txt").write_text("not an image")
    files = fid.list_fid_images(d)
    assert [f.name for f in files] == ["UPPER.PNG", "img_01.png", "small_00.png", "small_01.png"]
    batches = list(fid._whole_batches(files, 50))  # equal-size runs: 64x64 (2), then 40x48 (2)
    assert [tuple(b.shape) for b in batches] == [(2, 3, 64, 64), (2, 3, 40, 48)]
    fs = fid.folder_features(d, fid.FeatureSpec(dims=64), use_cache=False)
    assert fs.features.shape == (4, 64) and not fs.cached


def test_patch_mode(torch_home, tmp_path):
    d = make_folder(tmp_path / "big", 2, (96, 80), seed=5)
    spec = fid.FeatureSpec(dims=64, patches=3, patch_size=32, patch_mode="random", seed=1)
    fs = fid.folder_features(d, spec, use_cache=False)
    assert fs.features.shape == (6, 64)
    # crops are seeded by (seed, file name): reproducible, and another seed moves them
    assert fid.crop_positions(80, 96, spec, "a.png") == fid.crop_positions(80, 96, spec, "a.png")
    assert fid.crop_positions(80, 96, spec, "a.png") != fid.crop_positions(80, 96, spec, "b.png")
    reseeded = fid.FeatureSpec(dims=64, patches=3, patch_size=32, seed=2)
    assert fid.crop_positions(80, 96, spec, "a.png") != fid.crop_positions(80, 96, reseeded, "a.png")
    # the features are those of the crops themselves
    from srpipe.io.imageio import read_image

    img = read_image(fs.files[0])[0]
    crops = [(fs.files[0].name, img)]
    direct = fid.tensor_features(crops, spec)
    assert np.allclose(direct, fs.features[:3], atol=1e-5)
    # grid: non-overlapping cells of an 80x96 (h x w) image: 2 x 3 = 6 cells, spread when fewer are asked
    grid = fid.FeatureSpec(patches=4, patch_size=32, patch_mode="grid")
    assert fid.crop_positions(80, 96, grid, "x") == [(0, 0), (0, 64), (32, 0), (32, 64)]
    assert len(fid.crop_positions(80, 96, fid.FeatureSpec(patches=10, patch_size=32, patch_mode="grid"), "x")) == 6
    pos = fid.crop_positions(80, 96, spec, "x")
    assert all(0 <= y <= 48 and 0 <= x <= 64 for y, x in pos)
    with pytest.raises(SrpipeError, match="smaller than the 128x128 patches"):
        fid.folder_features(d, fid.FeatureSpec(dims=64, patches=2, patch_size=128), use_cache=False)


def test_feature_cache_is_used_and_keyed_by_content(torch_home, folders, tmp_path, monkeypatch):
    a, _ = folders
    cache = tmp_path / "cache"
    spec = fid.FeatureSpec(dims=64)
    first = fid.folder_features(a, spec, cache=cache)
    assert not first.cached and len(list(cache.rglob("*.npz"))) == 1

    def no_network(*args, **kwargs):
        raise AssertionError("Inception must not run when the features are cached")

    real_inception = fid.inception
    monkeypatch.setattr(fid, "inception", no_network)
    second = fid.folder_features(a, spec, cache=cache)
    assert second.cached and np.array_equal(first.features, second.features)
    assert second.features.shape == (5, 64)  # raw features, so KID can be computed from a cached side
    monkeypatch.setattr(fid, "inception", real_inception)
    # the same names with new content: recomputed under a new key
    make_folder(a, 1, (64, 64), seed=99)
    third = fid.folder_features(a, spec, cache=cache)
    assert not third.cached and third.key != first.key
    # patch settings change the key, and $SRPIPE_CACHE sets the default folder
    monkeypatch.setenv("SRPIPE_CACHE", str(tmp_path / "envcache"))
    assert fid.cache_dir() == tmp_path / "envcache" / "features"


def sqrtm_trace_tolerance(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """How far tr(sqrtm(S1 S2)) may move with rounding, for (possibly rank-deficient) covariances.

    Five images give 64-d covariances of rank 4: S1 S2 has ~60 eigenvalues at 0. Rounding perturbs
    each by up to ~d * eps * ||S1 S2|| and its square root by the square root of that, so the trace
    moves by up to d * sqrt(d * eps * ||S1 S2||) (Higham, Functions of Matrices, 2008, sec. 6.1), which
    depends on the BLAS, not by a relative 1e-9. Doubled for the two traces FID compares.
    """
    d = sigma1.shape[0]
    norm = np.linalg.norm(sigma1 @ sigma2, 2)
    return 2 * d * float(np.sqrt(d * np.finfo(np.float64).eps * norm))


def test_stats_files(torch_home, folders, tmp_path):
    from pytorch_fid.fid_score import compute_statistics_of_path

    a, b = folders
    stats_a = tmp_path / "a_stats.npz"
    spec = fid.FeatureSpec(dims=64)
    only = fid.compare(a, None, spec, save_stats_to=stats_a, cache=tmp_path / "c")
    assert only["fid"] is None and only["saved_stats"] == str(stats_a)
    # pytorch-fid reads our file
    mu, sigma = compute_statistics_of_path(str(stats_a), None, 50, 64, "cpu")
    feats = fid.folder_features(a, spec, cache=tmp_path / "c").features
    assert np.allclose(mu, feats.mean(0)) and np.allclose(sigma, np.cov(feats, rowvar=False))
    # a stats file on either side gives the folder-vs-folder FID, without KID
    direct = fid.compare(a, b, spec, cache=tmp_path / "c")
    via_file = fid.compare(b, stats_a, spec, cache=tmp_path / "c")  # the arguments swapped: sqrtm(S_b S_a)
    tol = sqrtm_trace_tolerance(
        sigma, np.cov(fid.folder_features(b, spec, cache=tmp_path / "c").features, rowvar=False)
    )
    assert tol < 1e-3 * direct["fid"]  # tight enough to catch a wrong side
    assert via_file["fid"] == pytest.approx(direct["fid"], abs=tol)
    assert via_file["kid_mean"] is None and any("KID needs features" in w for w in via_file["warnings"])
    both = fid.compare(stats_a, stats_a, spec)
    assert abs(both["fid"]) <= sqrtm_trace_tolerance(sigma, sigma)
    with pytest.raises(SrpipeError, match="same --dims"):
        fid.compare(stats_a, b, fid.FeatureSpec(dims=192), cache=tmp_path / "c")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(SrpipeError, match="needs arrays mu and sigma"):
        fid.compare(bad, b, spec)


def test_missing_inception_weights(empty_torch_home, folders, tmp_path):
    a, b = folders
    with pytest.raises(MissingWeightsError, match="pt_inception-2015-12-05-6726825d.pth"):
        fid.compare(a, b, fid.FeatureSpec(dims=64), cache=tmp_path / "c")


def test_whole_image_decoding_is_pytorch_fids(tmp_path):
    import cv2
    import torchvision.transforms as TF
    from PIL import Image

    d = make_folder(tmp_path / "d", 1, (20, 16), seed=3)
    p = d / "img_00.png"
    ours = fid.load_whole(p)
    theirs = TF.ToTensor()(Image.open(p).convert("RGB"))  # pytorch-fid's ImagePathDataset
    assert ours.shape == (3, 16, 20) and ours.equal(theirs)
    # 16-bit grey: Pillow's convert("RGB") would clip it to white; srpipe reads it to scale
    g16 = np.linspace(0, 65535, 16 * 20).reshape(16, 20).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    x = fid.load_whole(tmp_path / "g16.png")
    assert x.shape == (3, 16, 20) and x.mean().item() == pytest.approx(0.5, abs=1e-3)
