"""What every verb module of the command line shares: the error type, argument types, help layout."""

from __future__ import annotations

import argparse
import os
import pathlib
import textwrap


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def wrap(text: str) -> str:
    """One help layout for every command: paragraphs filled to 88 columns."""
    return textwrap.fill(text, width=88)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def short_paths(message: str) -> str:
    """Paths under the working directory shown relative to it (errors name resolved, absolute files)."""
    cwd = str(pathlib.Path.cwd())
    return message.replace(cwd.rstrip(os.sep) + os.sep, "") if cwd != os.sep else message


def print_help(parser: argparse.ArgumentParser) -> int:
    """A verb given without its subcommand: its help, exit status 2."""
    parser.print_help()
    return 2
