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


def run_in_processes(tag: str, commands: dict[str, list[str]], out: str | pathlib.Path, jobs: int,
                     on_finish=None) -> dict[str, str]:
    """Run each named command line in its own process, up to ``jobs`` at once, logging to OUT/<name>.log;
    ``on_finish(name, seconds, returncode)`` runs as each ends. Returns {name: reason} of the failed ones."""
    import time

    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    waiting, running, failed = list(commands), {}, {}
    while waiting or running:
        while waiting and len(running) < max(1, jobs):
            name = waiting.pop(0)
            log = open(pathlib.Path(out) / f"{name}.log", "w")
            print(f"{tag}: {name} started (log {log.name})", file=sys.stderr, flush=True)
            proc = subprocess.Popen(commands[name], stdout=log, stderr=subprocess.STDOUT)
            running[name] = (proc, log, time.perf_counter())
        done = next((n for n, (proc, _, _) in running.items() if proc.poll() is not None), None)
        if done is None:
            time.sleep(2)
            continue
        proc, log, started = running.pop(done)
        log.close()
        if on_finish is not None:
            on_finish(done, time.perf_counter() - started, proc.returncode)
        if proc.returncode != 0:
            failed[done] = f"exit status {proc.returncode}; see {log.name}"
        print(f"{tag}: {done} finished (exit {proc.returncode})", file=sys.stderr, flush=True)
    return failed


def emit(name: str, result: dict, save: bool) -> None:
    """Print result as JSON; with save, also write benchmarks/results/<name>_<date>.json."""
    text = json.dumps(result, indent=2, sort_keys=False)
    print(text)
    if save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}_{_dt.date.today().isoformat()}.json"
        path.write_text(text + "\n")
        print(f"saved {path}", file=sys.stderr)
