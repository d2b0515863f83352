"""`srpipe degrade-train` and `srpipe make-pairs` (srpipe.cli.degrade): a run end to end, the --real-lr
spelling, help, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from srpipe.cli import main
from tests.helpers import dsgan_argv


def test_cli_degrade_train_and_make_pairs(tiny_hr, tiny_lr, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("[data]\nhr_crop = 32\n[model]\nfeatures = 8\nres_blocks = 1\nd_features = 8\n[optim]\nbatch = 2\n")
    with pytest.raises(SystemExit) as e:
        main(dsgan_argv(tiny_hr, tiny_lr, tmp_path / "run", "--config", str(toml), "--iters", "2", "--device", "cpu"))
    assert e.value.code == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "generator.safetensors" in captured.out and "active losses" in captured.err
    with pytest.raises(SystemExit) as e:
        main(
            [
                "make-pairs",
                "--model",
                str(tmp_path / "run"),
                "--hr",
                str(tiny_hr),
                "--out",
                str(tmp_path / "pairs"),
                "--device",
                "cpu",
            ]
        )
    assert e.value.code == 0
    assert "6 pairs (x4)" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--real-lr", "--lr"])
def test_cli_real_lr_folder_takes_its_old_spelling_too(tiny_hr, tiny_lr, tmp_path, monkeypatch, capsys, flag):
    import srpipe.degrade.train as dsgan

    seen = {}

    def fake_train(cfg, *, hr_dir, real_lr_dir, out_dir, run):
        seen.update(hr_dir=hr_dir, real_lr_dir=real_lr_dir)
        return Path(out_dir) / "generator.safetensors"

    monkeypatch.setattr(dsgan, "train", fake_train)
    with pytest.raises(SystemExit) as e:
        main(dsgan_argv(tiny_hr, tiny_lr, tmp_path / "r", "--device", "cpu", flag=flag))
    assert e.value.code == 0, capsys.readouterr().err
    assert seen == {"hr_dir": str(tiny_hr), "real_lr_dir": str(tiny_lr)}


def test_cli_help_shows_real_lr_only_and_asks_for_it(tiny_hr, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["degrade-train", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "--real-lr PATH" in text and "--lr" not in text.replace("--real-lr", "")
    with pytest.raises(SystemExit) as e:
        main(["degrade-train", "--method", "dsgan", "--hr", str(tiny_hr), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "--real-lr DIR is required" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_make_pairs_precisions_are_the_inference_ones(capsys):
    from srpipe.config import INFER_PRECISIONS

    with pytest.raises(SystemExit) as e:
        main(["make-pairs", "--help"])
    assert e.value.code == 0 and f"--precision [{'|'.join(INFER_PRECISIONS)}]" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--set", "optim.nosuch=1"], 2, "unknown config key optim.nosuch"),
        (["--set", "optim.lr=fast"], 2, "optim.lr: expected a number"),
        (["--scale", "5"], 2, "data.scale must be 2, 3 or 4, got 5"),
        (["--precision", "fp16"], 2, "run.precision: 'fp16' is not one of 'auto', 'bf16', 'fp32'"),
        (["--set", "data.hr_crop=30"], 2, "multiple of data.scale"),
        (["--set", "loss.perceptual=lpips-alex", "--set", "data.hr_crop=64"], 2, "at least 32 px"),
    ],
)
def test_cli_config_errors_are_one_line(tiny_hr, tiny_lr, tmp_path, capsys, args, code, message):
    with pytest.raises(SystemExit) as e:
        main(dsgan_argv(tiny_hr, tiny_lr, tmp_path / "r", *args, flag="--lr"))
    err = capsys.readouterr().err
    assert e.value.code == code and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_cli_missing_folder_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(dsgan_argv(tmp_path / "nope", tmp_path, tmp_path / "r", flag="--lr"))
    err = capsys.readouterr().err
    assert e.value.code == 1 and "does not exist" in err and "Traceback" not in err
