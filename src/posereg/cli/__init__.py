"""The ``posereg`` command: one module per subcommand (parse the arguments, call the library, print).

Each command module has ``add_parser(subparsers)`` and a ``run(args) -> int`` that it sets as
the parser's ``func``; ``main`` dispatches. Commands import the library inside ``run`` so that
``posereg --help`` and the commands that do not train never import Lightning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from posereg.cli import bundle, demo, evaluate, geometry, locate_slice, register, train, version

__all__ = ["build_parser", "main"]

_COMMANDS = (version, demo, geometry, train, evaluate, bundle, locate_slice, register)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``posereg`` command."""
    parser = argparse.ArgumentParser(
        prog="posereg",
        description="Learn rigid poses (rotations, rigid transforms) with deep networks trained on geometric losses.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``posereg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
