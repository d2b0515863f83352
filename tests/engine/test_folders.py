"""engine.folders: one image folder mapped to another (listing, skips, the "no usable image" error, the
ranks' shares and their merge) and the distributed session make-pairs and upscale run in."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import distributed, folders
from srpipe.engine.folders import Skip, map_folder
from srpipe.errors import SrpipeError
from srpipe.io.imageio import read_image


def mean_of(p: Path) -> tuple[str, float]:
    img, _ = read_image(p)
    return p.stem, round(float(img.mean()), 6)


def test_every_image_in_name_order(tmp_path):
    src = make_folder(tmp_path / "in", 3, (8, 6))
    (src / "notes.txt").write_text("not an image")
    done = map_folder(src, mean_of)
    assert [stem for stem, _ in done.results] == ["img_00", "img_01", "img_02"] and done.skipped == []
    assert done.results[1] == mean_of(src / "img_01.png")


def test_unreadable_and_refused_files_are_skipped_with_one_warning(tmp_path, caplog):
    src = make_folder(tmp_path / "in", 2, (8, 6))
    (src / "broken.png").write_bytes(b"not a png")

    def refuse_img_01(p: Path):
        if p.stem == "img_01":
            raise Skip(f"{p} is too small")
        return mean_of(p)

    with caplog.at_level(logging.INFO, logger="srpipe"):
        done = map_folder(src, refuse_img_01)
    assert [stem for stem, _ in done.results] == ["img_00"]
    assert len(done.skipped) == 2  # in the files' order: broken.png, then img_01.png
    assert (
        "broken.png is not a readable image" in done.skipped[0]
        and done.skipped[1] == f"{src / 'img_01.png'} is too small"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["skipped 2 file(s): " + "; ".join(done.skipped)]


def test_no_usable_image_is_one_error_naming_at_most_five_reasons(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(7):
        (src / f"bad_{i}.png").write_bytes(b"")
    with pytest.raises(SrpipeError) as e:
        map_folder(src, mean_of)
    msg = str(e.value)
    assert msg.startswith(f"no usable image in {src}, nothing written: ") and msg.endswith("; and 2 more")
    assert all(f"bad_{i}.png" in msg for i in range(5)) and "bad_5.png" not in msg


def test_nothing_to_record_is_not_a_failure(tmp_path):
    src = make_folder(tmp_path / "in", 2, (8, 6))
    done = map_folder(src, lambda p: None)  # e.g. every output exists already
    assert done.results == [] and done.skipped == []


def test_an_empty_folder_and_clashing_stems_stop_before_any_work(tmp_path):
    calls = []
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrpipeError, match="HR folder .*empty contains no images"):
        map_folder(tmp_path / "empty", calls.append, what="HR")
    with pytest.raises(SrpipeError, match="input .*listed contains no images"):
        map_folder([], calls.append, where=tmp_path / "listed")
    src = make_folder(tmp_path / "clash", 1, (8, 6))
    (src / "img_00.jpg").write_bytes((src / "img_00.png").read_bytes())
    with pytest.raises(SrpipeError, match="img_00.png and img_00.jpg .* would both be written as img_00.webp; rename"):
        map_folder(src, calls.append, ext="webp")
    assert calls == []


def test_other_errors_are_not_skips(tmp_path):
    src = make_folder(tmp_path / "in", 2, (8, 6))

    def disk_full(p: Path):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        map_folder(src, disk_full)


class _ThreadRanks:
    """The all-gather of `Share.merge` between threads: rank r's lists in slot r, every rank gets all."""

    def __init__(self, size: int):
        self.slots: list = [None] * size
        self.barrier = threading.Barrier(size, timeout=30)

    def share(self, rank: int) -> distributed.Share:
        ranks, share = self, distributed.Share(distributed.World(rank, len(self.slots)))

        def merge(*lists):
            ranks.slots[rank] = [list(v) for v in lists]
            ranks.barrier.wait()
            return tuple([v for slot in ranks.slots for v in slot[i]] for i in range(len(lists)))

        share.merge = merge
        return share


def test_ranks_take_every_other_file_and_all_get_the_merged_result_in_file_order(tmp_path):
    src = make_folder(tmp_path / "in", 5, (8, 6))
    (src / "img_02.png").write_bytes(b"")  # rank 0's share: 00, 02, 04; rank 1's: 01, 03
    single = map_folder(src, mean_of)
    ranks, seen, got = _ThreadRanks(2), {0: [], 1: []}, {}

    def run(rank: int) -> None:
        def fn(p: Path):
            seen[rank].append(p.stem)
            return mean_of(p)

        got[rank] = map_folder(src, fn, share=ranks.share(rank))

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == {0: ["img_00", "img_02", "img_04"], 1: ["img_01", "img_03"]}
    assert got[0] == got[1] == single  # results and skips in the files' order, not the ranks'
    assert [stem for stem, _ in single.results] == ["img_00", "img_01", "img_03", "img_04"]


def test_a_session_of_one_process(tmp_path):
    with folders.session("cpu") as (share, dev):
        assert dev == torch.device("cpu") and share.main and share.world.size == 1
        src = make_folder(tmp_path / "in", 2, (8, 6))
        assert len(map_folder(src, mean_of, share=share).results) == 2
