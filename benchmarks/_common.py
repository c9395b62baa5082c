"""Helpers shared by the benchmark scripts: machine description and result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
import platform
import subprocess
import sys

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo", encoding="utf-8")
            if line.startswith("model name")
        )
        info["cpu_model"] = model
    except (OSError, StopIteration):
        pass
    try:
        import mujoco
        import numpy

        info["mujoco"] = mujoco.__version__
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
            cwd=pathlib.Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def tagged(parser, name: str, tag: str) -> str:
    """The result file stem: name, or name_<tag> for a variant (--tag); a tag that cannot be part of a
    file name stops with a one-line usage error."""
    if not tag:
        return name
    if not all(c.isalnum() or c in "-_" for c in tag):
        parser.error(f"--tag {tag!r}: use letters, digits, '-' and '_' only (it becomes part of a file name)")
    return f"{name}_{tag}"


def add_training_args(parser, name: str, quick: str, set_help: str = "extra config override for every run") -> None:
    """The options of every benchmark that trains agents: threads, device, overrides, the run folder, report-only,
    quick (``quick`` says what it shrinks), quiet and save."""
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help=f"{set_help} (repeatable)")
    parser.add_argument("--out", default=f"outputs/{name}", help="folder of the run directories")
    parser.add_argument("--report-only", action="store_true", help="do not train; report the runs in --out")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--save", action="store_true", help=f"write benchmarks/results/{name}_<date>.json and .png")


def emit(name: str, result: dict, save: bool) -> None:
    """Print result as JSON; with save, also write benchmarks/results/<name>_<date>.json."""
    text = json.dumps(result, indent=2, sort_keys=False)
    print(text)
    if save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}_{_dt.date.today().isoformat()}.json"
        path.write_text(text + "\n")
        print(f"saved {path}", file=sys.stderr)
