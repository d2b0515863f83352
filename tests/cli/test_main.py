"""CLI shell: help, doctor, one-line errors without tracebacks, --debug tracebacks, crash logs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from srpipe.engine import weights
from srpipe.cli import console, main


def srpipe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter (`python -m srpipe ...`)."""
    e = {k: v for k, v in os.environ.items() if k != "SRPIPE_DEBUG"}
    e.update({"SRPIPE_OFFLINE": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "srpipe", *args], env=e, capture_output=True, text=True, timeout=120)


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_help_lists_commands_and_exits_0():
    r = srpipe("--help")
    assert r.returncode == 0, r.stderr
    for cmd in ("degrade-train", "make-pairs", "doctor"):
        assert cmd in r.stdout
    assert r.stderr == ""
    assert srpipe("-h").stdout == r.stdout


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from srpipe.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('HEAVY', sorted(m for m in ('torch', 'cv2', 'lpips') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_version():
    from srpipe import __version__

    r = srpipe("--version")
    assert r.returncode == 0 and __version__ in r.stdout


def test_doctor_lists_weights_with_paths(torch_home, capsys):
    with pytest.raises(SystemExit) as ei:
        main(["doctor"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    vgg_path = torch_home / "hub" / "checkpoints" / weights.FILES["vgg19"].filename
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("vgg19"))
    assert "found" in row and str(vgg_path) in row  # whole path on one line, even in a pipe
    row16 = next(ln for ln in out.splitlines() if ln.strip().startswith("vgg16"))
    assert "missing" in row16 and weights.FILES["vgg16"].url in row16
    assert "torch" in out and "lpips" in out
    libs = [ln for ln in out.splitlines() if ln.strip("│ ").startswith(("lpips", "rich"))]
    assert len(libs) == 2 and all("?" not in ln for ln in libs), libs  # every library reports a real version


def test_doctor_with_weights_dir(empty_torch_home, standin_weights_store, capsys):
    with pytest.raises(SystemExit) as ei:
        main(["doctor", "--weights-dir", str(standin_weights_store)])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    alex = standin_weights_store / weights.FILES["alexnet"].filename
    assert str(alex) in out
    row16 = next(ln for ln in out.splitlines() if ln.strip().startswith("vgg16"))
    assert str(standin_weights_store) in row16  # where to put the missing file


def test_srpipe_error_is_one_line_without_traceback(tmp_path):
    r = srpipe(
        "make-pairs", "--model", str(tmp_path / "nonexistent"), "--hr", str(tmp_path), "--out", str(tmp_path / "o")
    )
    assert r.returncode == 1
    err = lines(r.stderr)
    assert len(err) == 1 and err[0].startswith("error:"), r.stderr
    assert "nonexistent" in err[0] and "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "o").exists()


def test_usage_error_exit_2_names_the_key(tmp_path):
    r = srpipe(
        "degrade-train",
        "--hr",
        str(tmp_path),
        "--lr",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "nosuch.key=1",
    )
    assert r.returncode == 2
    err = lines(r.stderr)
    assert len(err) == 1 and "nosuch.key" in err[0] and "valid keys" in err[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_long_error_stays_on_one_line(tmp_path, capsys):
    """Rich wraps at 80 columns by default; an error (with paths in it) must not be cut into pieces."""
    key = "section_" + "x" * 150
    with pytest.raises(SystemExit) as ei:
        main(
            [
                "degrade-train",
                "--hr",
                str(tmp_path),
                "--lr",
                str(tmp_path),
                "--out",
                str(tmp_path / "r"),
                "--set",
                f"{key}=1",
            ]
        )
    assert ei.value.code == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and key in err[0]


def test_debug_shows_traceback(tmp_path):
    args = (
        "degrade-train",
        "--hr",
        str(tmp_path),
        "--lr",
        str(tmp_path),
        "--out",
        str(tmp_path / "r"),
        "--set",
        "nosuch.key=1",
    )
    r = srpipe("--debug", *args)
    assert r.returncode == 2 and "Traceback" in r.stderr and "nosuch.key" in r.stderr
    r = srpipe(*args, env={"SRPIPE_DEBUG": "1"})
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_click_usage_errors(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["no-such-command"])
    assert ei.value.code == 2 and "No such command" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main(["degrade-train"])  # --hr/--out missing
    assert ei.value.code == 2 and "Missing option" in capsys.readouterr().err


def test_unexpected_error_writes_crash_log(torch_home, monkeypatch, tmp_path, capsys):
    def broken(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(weights, "status", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SystemExit) as ei:
        main(["doctor"])
    assert ei.value.code == 1
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and "unexpected RuntimeError: simulated bug" in err[0]
    logs = list(tmp_path.glob("srpipe-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err[0]
    text = logs[0].read_text()
    assert "Traceback" in text and "simulated bug" in text and "doctor" in text


def test_console_messages_are_not_markup(capsys):
    console.warn("config key [data] has no x[/] here")
    console.error("file /tmp/[bold]x.png is odd")
    console.info("[red]plain[/red]")
    err = capsys.readouterr().err
    assert "config key [data] has no x[/] here" in err
    assert "/tmp/[bold]x.png" in err and "[red]plain[/red]" in err
