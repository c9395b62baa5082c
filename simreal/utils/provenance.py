"""Where a result came from: the git commit of the code that made it, the checksum of a file."""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess


def git_commit() -> str | None:
    """The short commit of the simreal checkout (None outside a git checkout or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=pathlib.Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as hex."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
