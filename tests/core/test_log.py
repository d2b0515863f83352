"""srpipe.log: the library reports through stdlib logging and a progress hook; the CLI renders both."""

from __future__ import annotations

import logging

import pytest

from srpipe import log
from srpipe.cli import console


@pytest.fixture
def clean_log(monkeypatch):
    """The `srpipe` logger and progress hook as a library user finds them; restored afterwards."""
    logger = log.logger
    saved = (list(logger.handlers), logger.level, logger.propagate, log._factory, console.err.quiet, console.out.quiet)
    logger.handlers[:] = []
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    log.set_progress(None)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
    log.set_progress(saved[3])
    console.err.quiet, console.out.quiet = saved[4], saved[5]


def test_a_library_user_gets_plain_logging_and_no_bars(clean_log, caplog):
    with caplog.at_level(logging.INFO, logger="srpipe"):
        log.info("resuming run at step 3")
        log.warn("skipped 1 file")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "resuming run at step 3"),
        ("WARNING", "skipped 1 file"),
    ]
    bar = log.progress(10, "train")
    assert type(bar) is log.Progress  # the no-op base: nothing drawn
    assert list(log.track([1, 2, 3], "items")) == [1, 2, 3]


def test_the_cli_renders_messages_on_stderr_without_markup(clean_log, capsys):
    console.configure()
    console.configure()  # idempotent: one handler, not two copies of each line
    log.info("[red]plain[/red] text")
    log.warn("config key [data] here")
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.splitlines() == ["[red]plain[/red] text", "warning: config key [data] here"]
    assert log.progress(5, "x").__class__ is console.RichProgress
    assert log.progress(5, "x", enabled=False).__class__ is log.Progress


def test_the_cli_mutes_ranks_other_than_0(clean_log, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    console.configure()
    log.warn("only rank 0 says this")
    console.out.print("result")
    cap = capsys.readouterr()
    assert (cap.out, cap.err) == ("", "")


def test_rank_0_keeps_its_voice(clean_log, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    console.configure()
    log.warn("rank 0 speaks")
    assert capsys.readouterr().err == "warning: rank 0 speaks\n"
