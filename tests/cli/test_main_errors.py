"""`--debug` / SRPIPE_DEBUG and the CLI's error contract.

Without debug an unexpected error (a bug) prints exactly one line: what happened and where the log
with the full traceback is. With `--debug` or `SRPIPE_DEBUG=1` the traceback itself is shown, for
bug reports. Exit codes: 0 success (or what a command asked for with `ctx.exit`), 1 errors,
2 usage errors, 130 interrupts. test_main.py covers the crash log of `doctor` and `--debug`
on a usage error in a subprocess; these tests cover the rest, in-process.
"""

from __future__ import annotations

import errno
import tempfile

import click
import pytest

from tests.helpers import make_folder
from srpipe.cli import cli as group
from srpipe.cli import main
from srpipe.errors import SrpipeError


@pytest.fixture
def crash_dir(tmp_path, monkeypatch):
    """Crash logs go here instead of the system temp folder."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    monkeypatch.delenv("SRPIPE_DEBUG", raising=False)
    return d


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    c = capsys.readouterr()
    return e.value.code, c.out, c.err


def nonblank(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def buggy_make_pairs(monkeypatch, tmp_path):
    """`make-pairs` whose library function has a bug with a two-line message."""

    def broken(**kw):
        def inner_helper():
            raise RuntimeError("simulated bug in make-pairs\nsecond line of detail")

        inner_helper()

    monkeypatch.setattr("srpipe.degrade.pairs.make_pairs", broken)
    hr = make_folder(tmp_path / "hr", 1, (16, 16))
    return ["make-pairs", "--model", tmp_path / "m.safetensors", "--hr", hr, "--out", tmp_path / "pairs"]


def test_unexpected_error_is_one_line_with_the_log_path(buggy_make_pairs, crash_dir, capsys):
    code, out, err = run(capsys, *buggy_make_pairs)
    assert code == 1 and out == ""
    lines = nonblank(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: unexpected RuntimeError: simulated bug in make-pairs")
    assert "second line" not in err and "Traceback" not in err
    [log] = crash_dir.glob("srpipe-crash-*.log")
    assert str(log) in lines[0] and "please report it" in lines[0]
    text = log.read_text()
    assert text.startswith("srpipe ") and "make-pairs" in text.splitlines()[0]  # version and the command line
    assert "Traceback" in text and "inner_helper" in text and "second line of detail" in text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_and_writes_no_log(buggy_make_pairs, crash_dir, capsys, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("SRPIPE_DEBUG", "1")
        args = buggy_make_pairs
    else:
        args = ["--debug", *buggy_make_pairs]
    code, _, err = run(capsys, *args)
    assert code == 1
    assert "Traceback" in err and "inner_helper" in err and "simulated bug in make-pairs" in err
    assert not list(crash_dir.glob("srpipe-crash-*.log"))


def test_srpipe_debug_0_means_off(buggy_make_pairs, crash_dir, capsys, monkeypatch):
    monkeypatch.setenv("SRPIPE_DEBUG", "0")
    code, _, err = run(capsys, *buggy_make_pairs)
    assert code == 1 and "Traceback" not in err and len(nonblank(err)) == 1
    assert len(list(crash_dir.glob("srpipe-crash-*.log"))) == 1


def test_expected_errors_show_a_traceback_only_with_debug(tmp_path, crash_dir, capsys):
    args = ["make-pairs", "--model", tmp_path / "missing.safetensors", "--hr", tmp_path, "--out", tmp_path / "o"]
    code, _, err = run(capsys, *args)
    assert code == 1 and nonblank(err) == [
        f"error: model {tmp_path / 'missing.safetensors'} does not exist "
        "(give a degrade-train run folder or its generator.safetensors)"
    ]
    code, _, err = run(capsys, "--debug", *args)
    assert code == 1 and "Traceback" in err and "generator_file" in err
    assert nonblank(err)[-1].startswith("error: model ")  # the one-line message still ends the output
    assert not list(crash_dir.glob("*.log"))  # a user error is not a bug: no crash log


def test_crash_log_that_cannot_be_written(buggy_make_pairs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no" / "such" / "dir"))
    monkeypatch.delenv("SRPIPE_DEBUG", raising=False)
    code, _, err = run(capsys, *buggy_make_pairs)
    assert code == 1 and len(nonblank(err)) == 1
    assert "rerun with --debug for the traceback" in err


def test_an_os_error_nobody_wrapped_names_the_file(monkeypatch, tmp_path, crash_dir, capsys):
    """Disk full or permission denied somewhere unexpected: one line naming the file, exit 1."""

    def full(**kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "pairs" / "lr" / "x.png"))

    monkeypatch.setattr("srpipe.degrade.pairs.make_pairs", full)
    code, _, err = run(capsys, "make-pairs", "--model", tmp_path / "m", "--hr", tmp_path, "--out", tmp_path / "pairs")
    assert code == 1 and "Traceback" not in err
    lines = nonblank(err)
    assert len(lines) == 1 and "No space left on device" in lines[0] and "x.png" in lines[0], err
    assert "free" in lines[0]  # what to do


@pytest.fixture
def extra_command():
    """Register a throw-away command on the `srpipe` group for one test."""
    added = []

    def add(cmd: click.Command):
        group.add_command(cmd)
        added.append(cmd.name)

    yield add
    for name in added:
        group.commands.pop(name, None)


@pytest.mark.parametrize("n", [0, 3, 130])
def test_ctx_exit_code_is_the_process_exit_code(extra_command, capsys, n):
    @click.command("exit-with")
    @click.pass_context
    def exit_with(ctx):
        ctx.exit(n)

    extra_command(exit_with)
    code, _, _ = run(capsys, "exit-with")
    assert code == n


def test_help_version_and_success_exit_0(extra_command, capsys):
    @click.command("returns-text")
    def returns_text():
        return "some value"  # a non-int return value is not an exit code

    extra_command(returns_text)
    assert run(capsys, "returns-text")[0] == 0
    assert run(capsys, "--help")[0] == 0
    code, out, _ = run(capsys, "--version")
    assert code == 0 and "srpipe" in out


@pytest.mark.parametrize(
    "exc, code, text",
    [
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (click.exceptions.Abort(), 130, "error: aborted"),
        (SrpipeError("stopped by signal at step 7; checkpoint saved"), 1, "error: stopped by signal at step 7"),
    ],
)
def test_interrupts_and_aborts(extra_command, capsys, exc, code, text):
    @click.command("raises")
    def raises():
        raise exc

    extra_command(raises)
    c, _, err = run(capsys, "raises")
    assert c == code and nonblank(err) == [nonblank(err)[0]] and nonblank(err)[0].startswith(text)


def test_training_interrupt_exits_130(extra_command, capsys):
    from srpipe.engine.signals import Interrupted

    @click.command("stopped")
    def stopped():
        raise Interrupted("stopped by signal at step 3; checkpoint saved in X; rerun the same command to resume")

    extra_command(stopped)
    code, _, err = run(capsys, "stopped")
    assert code == 130 and "rerun the same command to resume" in err and "Traceback" not in err
