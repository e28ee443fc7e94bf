"""The ``posereg`` command: one module per subcommand (parse the arguments, call the library, print).

Each command module has ``add_parser(subparsers)`` and a ``run(args) -> int`` that it sets as
the parser's ``func``; ``main`` dispatches. Commands import the library inside ``run`` so that
``posereg --help`` and the commands that do not train never import Lightning.

``main`` is the one error boundary: a failure the library reports (``ValueError``, a missing or
unreadable file, too little memory) prints ``posereg COMMAND: what went wrong`` on stderr and
exits with status 2; anything else exits with status 1 and the same one line, plus a hint;
``--debug`` (anywhere on the command line) shows the traceback instead. Exit statuses: 0 done,
1 internal error, 2 bad input or usage, 3 a doubtful registration (``posereg register``),
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from posereg.cli import (
    apply,
    bundle,
    demo,
    evaluate,
    geometry,
    locate_slice,
    predict,
    register,
    train,
    version,
)

__all__ = ["BAD_INPUT_EXIT", "INTERNAL_ERROR_EXIT", "INTERRUPTED_EXIT", "build_parser", "main"]

BAD_INPUT_EXIT = 2
INTERNAL_ERROR_EXIT = 1
INTERRUPTED_EXIT = 130
# What the library raises for input it cannot use: the user's to fix, reported without a traceback.
_EXPECTED = (ValueError, OSError, EOFError, MemoryError, UnicodeDecodeError)

_COMMANDS = (version, demo, geometry, train, evaluate, bundle, register, predict, apply, locate_slice)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``posereg`` command."""
    parser = argparse.ArgumentParser(
        prog="posereg",
        description="Learn rigid poses (rotations, rigid transforms) with deep networks trained on geometric losses.",
    )
    from posereg import __version__

    parser.add_argument("--version", action="version", version=f"posereg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on the parser and on every (nested) subcommand, so it may come anywhere."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of a failure")  # fmt: skip
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_debug(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``posereg`` command; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return BAD_INPUT_EXIT
    name = " ".join(str(part) for part in (args.command, getattr(args, "task", None)) if part)
    debug = getattr(args, "debug", False)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"posereg {name}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except BrokenPipeError:
        # The reader went away (``posereg ... | head``): nothing more to say to it. Point stdout at
        # devnull so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _EXPECTED as exc:
        if debug:
            raise
        print(f"posereg {name}: {_message(exc)}", file=sys.stderr)
        return BAD_INPUT_EXIT
    except Exception as exc:  # a bug: say so in one line, the traceback on request
        if debug:
            raise
        print(f"posereg {name}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
              "traceback, and please report it)", file=sys.stderr)  # fmt: skip
        return INTERNAL_ERROR_EXIT


def _message(exc: BaseException) -> str:
    """One line: the message, with the file name for OS errors that carry one."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, MemoryError):
        return "not enough memory for this input"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
