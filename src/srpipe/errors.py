"""The one exception type whose message is meant for the user.

Library code raises `SrpipeError` with a message that says what went wrong, which file, and what
to do; the CLI prints that one line and exits non-zero. Anything else is a bug and gets the
"unexpected error" treatment (see `srpipe.cli`).
"""


class SrpipeError(Exception):
    """An error caused by input, configuration or environment, explained in its message."""

    exit_code = 1


class UsageError(SrpipeError):
    """Bad command-line or configuration input (exit code 2, like click's own usage errors)."""

    exit_code = 2


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line errors."""
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:limit]


def write_failed(path, e: OSError, *, kept: str = "") -> str:
    """One line for a failed write: which file, why, what survived, and what to do."""
    reason = e.strerror or first_line(e)
    return (
        f"cannot write {path}: {reason}; "
        + (f"{kept}; " if kept else "")
        + "free disk space or make the folder writable, then rerun the same command"
    )
