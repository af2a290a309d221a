"""The ``colonsim`` command. It parses arguments and dispatches: one library call per subcommand.

Each package declares its subcommands in a ``commands`` module with ``add_parsers(subparsers)``;
every handler returns ``(summary_line, result_dict)``. This file prints the one-line summary (or
the JSON object with ``--json``) and turns bad input into one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading

# Modules that declare subcommands. They import heavy libraries (torch, pyrender) lazily, inside
# their handlers, so that `colonsim --help` stays fast.
COMMAND_MODULES = (
    "colonsim.commands.mesh",
    "colonsim.commands.render",
    "colonsim.commands.tune",
    "colonsim.commands.plan",
    "colonsim.commands.export",
    "colonsim.commands.textures",
    "experiment.compose",  # `colonsim depth ...` (depth.commands), with `depth eval --refiner` from adapt/
    "adapt.commands",
    "experiment.commands",
)


INTERRUPTED = 130   # the exit status of a command stopped by Ctrl-C (128 + SIGINT)
INTERRUPT_GRACE_S = 3.0   # after Ctrl-C, the clean-up may take this long before the process ends anyway
MAX_ERROR_CHARS = 2000   # an error line longer than this is cut (a message may quote the input)


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (no usage block), exit status 2."""

    def error(self, message):  # noqa: D102
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from colonsim import __version__

    parser = _Parser(prog="colonsim", description="Synthetic colonoscopy with exact depth, and reverse "
                     "domain adaptation of real frames (Mahmood, Chen, Durr 2017).")
    parser.add_argument("--version", action="version", version=f"colonsim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue  # a package without commands yet
            raise
        module.add_parsers(sub)
    return parser


def _error(message: str) -> int:
    message = " ".join(str(message).split())  # one line, whatever the exception said
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + f"... ({len(message) - MAX_ERROR_CHARS} more characters)"
    sys.stderr.write(f"colonsim: error: {message}\n")
    return 2


def _ignore_sigint(argv) -> None:
    """Ignore further Ctrl-C in the program itself (not in a caller of main() such as a test)."""
    if argv is None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:   # Ctrl-C while the commands load, before any work: one line all the same
        _ignore_sigint(argv)
        _error("interrupted")
        return INTERRUPTED


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own packages log progress at INFO; third-party libraries (trimesh, ray, ...) only warnings.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("colonsim", "depth", "adapt", "experiment"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2

    from colonsim.errors import ColonSimError
    from colonsim.run import interrupt

    resume = " (run again with --resume)" if hasattr(args, "resume") else ""
    reported = threading.Lock()
    finished = threading.Event()

    def interrupted() -> int:
        if reported.acquire(blocking=False):   # once, from whichever thread comes first
            _error(f"interrupted; what was written so far is kept{resume}")
        return INTERRUPTED

    def stuck() -> None:   # the main thread is in a long C call: end here, still with one line
        if finished.is_set():   # the command ended on its own (tune --ui stops on Ctrl-C)
            return
        interrupted()
        sys.stderr.flush()
        os._exit(INTERRUPTED)

    interrupt.install()   # a Ctrl-C swallowed by a garbage-collector callback is raised again
    if argv is None:   # the program itself (not a caller in the same process, such as a test)
        interrupt.watch(INTERRUPT_GRACE_S, stuck)
    try:
        summary, result = args.func(args)
    except ColonSimError as e:
        if interrupt.interrupted():   # bad input met on the way out of an interrupted run
            return interrupted()
        return _error(str(e))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError) as e:
        return _error(f"{e.strerror or e}: {e.filename}" if getattr(e, "filename", None) else str(e))
    except KeyboardInterrupt:  # Ctrl-C: one line, work kept, exit 130 (128 + SIGINT) as shells expect
        _ignore_sigint(argv)   # a second Ctrl-C does not cut the clean-up short
        return interrupted()
    except Exception:
        if interrupt.interrupted():   # a library that swallowed the KeyboardInterrupt, then failed
            return interrupted()
        raise
    finished.set()
    _ignore_sigint(argv)   # done: a late Ctrl-C neither loses the summary nor kills the exit
    try:
        print(json.dumps(result, sort_keys=True) if getattr(args, "json", False) else summary, flush=True)
    except BrokenPipeError:  # e.g. `colonsim inspect X --json | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
