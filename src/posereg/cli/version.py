"""``posereg version``: the posereg and torch versions."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser("version", help="print the posereg and torch versions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the versions."""
    import torch

    import posereg

    print(f"posereg {posereg.__version__} (torch {torch.__version__})")
    return 0
