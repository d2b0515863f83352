"""`srpipe` command line: a thin shell over the library.

Each command parses its options, builds a config, calls one library function and renders the result
with the shared consoles. Heavy imports (torch) happen inside the commands, so `--help` is fast.
Errors: a `SrpipeError` prints one line and exits non-zero; anything else is a bug, printed as one
line plus the path of a log with the full traceback (or the traceback itself with --debug /
SRPIPE_DEBUG=1).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback

import click

from srpipe import __version__
from srpipe.cli import console
from srpipe.cli.degrade import degrade_train, make_pairs
from srpipe.cli.doctor import doctor
from srpipe.cli.pipeline import gc_cmd, report_cmd, run_cmd, status_cmd
from srpipe.cli.evaluate import eval_degradation, eval_fid, eval_sr
from srpipe.cli.upscale import export, interpolate, sr_train, upscale


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="srpipe")
@click.option("--debug", is_flag=True, envvar="SRPIPE_DEBUG", help="Show full tracebacks (also SRPIPE_DEBUG=1).")
def cli(debug: bool) -> None:
    """Real-world super-resolution: learn the degradation, make pairs, train ESRGAN, evaluate."""


cli.add_command(degrade_train)
cli.add_command(make_pairs)
cli.add_command(sr_train)
cli.add_command(interpolate)
cli.add_command(upscale)
cli.add_command(export)
cli.add_command(doctor)
cli.add_command(run_cmd)
cli.add_command(status_cmd)
cli.add_command(gc_cmd)
cli.add_command(report_cmd)
cli.add_command(eval_fid)
cli.add_command(eval_sr)
cli.add_command(eval_degradation)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SRPIPE_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    console.configure()
    from srpipe.errors import SrpipeError, first_line

    try:
        # Without standalone mode click returns what `ctx.exit(n)` asked for instead of exiting.
        rv = cli.main(args=argv, prog_name="srpipe", standalone_mode=False)
    except click.exceptions.Abort as e:  # click turns Ctrl-C inside a command into Abort
        console.error("interrupted" if isinstance(e.__context__, KeyboardInterrupt) else "aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SrpipeError as e:
        if _debug_requested(argv):
            console.err.print_exception()
        console.error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(130)
    except OSError as e:
        # Disk full, a read-only or vanished folder: the machine's state, not a bug. Library code
        # wraps the writes it expects to fail; this catches the rest with the same kind of line.
        if _debug_requested(argv):
            console.err.print_exception()
        what = f" {e.filename}" if e.filename else ""
        console.error(
            f"cannot access{what}: {e.strerror or first_line(e)}; free disk space or fix permissions, "
            "then rerun (runs resume from their last checkpoint; --debug shows the traceback)"
        )
        sys.exit(1)
    except Exception as e:  # a bug: keep the traceback for the report, show one line
        if _debug_requested(argv):
            console.err.print_exception()
        else:
            log = os.path.join(
                tempfile.gettempdir(), f"srpipe-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            )
            try:
                with open(log, "w") as fh:
                    fh.write(f"srpipe {__version__} {' '.join(argv)}\n")
                    traceback.print_exc(file=fh)
                where = f"full traceback in {log}; please report it with that file"
            except OSError:
                where = "rerun with --debug for the traceback and please report it"
            # first line only: torch's messages run over several lines, the log has all of them
            console.error(f"unexpected {type(e).__name__}: {first_line(e, 300)} ({where})")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
