"""`simreal randomization check|sample|adr|schema`: validate, sample and describe randomization files, and
show how a run's ADR ranges moved."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from simreal.utils.cli import CliError, positive_int, print_help, short_paths, wrap


def _load(file: str):
    from simreal.randomize.spec import RandomizationError, load_spec, resolve_path

    try:
        return load_spec(file)
    except RandomizationError as exc:
        if not str(exc).endswith(": rig: unknown key"):
            raise CliError(short_paths(str(exc))) from None
    from simreal.rigs.sim import RigError, load_reality  # a reality file: a randomization under a 'rig' header

    try:
        return load_reality(resolve_path(file)).spec
    except RigError as exc:
        raise CliError(short_paths(str(exc))) from None


def cmd_randomization_check(args: argparse.Namespace) -> int:
    from simreal.randomize import sampling
    from simreal.registration import bind_to_env
    from simreal.randomize.spec import FAMILIES

    spec = _load(args.file)
    enabled = spec.enabled()
    counts = {f: sum(r.family == f for r in enabled) for f, family in FAMILIES.items() if not family.rendered}
    n_disabled = len(spec.randomizers) - len(enabled)
    bound = ""
    if not args.no_env:
        stack = bind_to_env(spec, args.env)
        stack.seed(0, 0)
        stack.on_reset([0])  # one draw-and-apply, as an episode start does
        bound = f"; bound to {args.env}"
    plural = "" if len(enabled) == 1 else "s"
    print(f"ok: {args.file}: {len(enabled)} randomizer{plural} ("
          + ", ".join(f"{n} {f}" for f, n in counts.items())
          + f"), {n_disabled} disabled{bound}")
    return 0


def cmd_randomization_sample(args: argparse.Namespace) -> int:
    from simreal.randomize import sampling
    from simreal.registration import bind_to_env

    spec = _load(args.file)
    stack = bind_to_env(spec, args.env)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"simreal randomization sample: {args.file} on {args.env}, {len(stack.items)} randomizers, "
          f"{args.n} episodes from seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    samples = sampling.draw_samples(stack, args.n, args.seed, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    csv_path = sampling.write_csv(samples, out / "samples.csv", n=args.n)
    print(f"wrote {csv_path} ({args.n} rows, {len(sampling.columns(samples))} value columns; "
          f"sampled in {elapsed:.2f} s)")
    if not args.no_plot:
        png = sampling.plot_histograms(samples, stack, out / "histograms.png", n=args.n)
        print(f"wrote {png} (one histogram per randomizer, the file's density or pmf in red)")
    return 0


def cmd_randomization_adr(args: argparse.Namespace) -> int:
    from simreal.training.adr_history import plot_history, read_history, table
    from simreal.randomize.spec import RandomizationError

    try:
        history = read_history(args.run_dir)
    except RandomizationError as exc:
        raise CliError(short_paths(str(exc))) from None
    print(table(history))
    if not args.no_plot:
        png = plot_history(history, args.out or pathlib.Path(args.run_dir) / "adr.png")
        print(f"wrote {png} (each range over env steps; dashed: its limits)")
    return 0


def cmd_randomization_schema(args: argparse.Namespace) -> int:
    from simreal.randomize.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        path = pathlib.Path(args.out)
        if path.parent != pathlib.Path("."):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


def register(sub) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    rnd = sub.add_parser(
        "randomization", help="check, sample and describe randomization YAML files", formatter_class=fmt,
        description=wrap(
            "Work with randomization files (randomizations/*.yaml): validate one against an env, "
            "draw samples of every randomizer, or export the file format's JSON Schema."),
        epilog="examples:\n"
               "  simreal randomization check randomizations/dactyl.yaml\n"
               "  simreal randomization sample randomizations/dactyl.yaml -n 1000 --out outputs/dactyl-samples\n"
               "  simreal randomization adr runs/hand_adr      # how a run's ADR ranges moved\n"
               "  simreal randomization schema --out randomization.schema.json")
    rnd_sub = rnd.add_subparsers(dest="randomization_command", metavar="SUBCOMMAND")
    file_help = "a randomization YAML file (a path, or the bare name of a shipped file such as 'dactyl')"

    check = rnd_sub.add_parser(
        "check", help="validate a file (and bind it to an env)", formatter_class=fmt,
        description=wrap(
            "Load and validate a randomization file (extends, remove, every key and value), then bind "
            "it to a one-copy simulation of an env so target fields, object names and observation keys "
            "are checked against the real model. Prints one summary line; on a problem prints one line "
            "naming the file and the key path, and exits with status 2."),
        epilog="examples:\n"
               "  simreal randomization check randomizations/dactyl.yaml\n"
               "  simreal randomization check my.yaml --no-env      # the file alone, no model")
    check.add_argument("file", metavar="FILE", help=file_help)
    where = check.add_mutually_exclusive_group()
    where.add_argument("--env", default="simreal/HandCube-v0",
                       help="env id to bind the file to (default simreal/HandCube-v0)")
    where.add_argument("--no-env", action="store_true", help="validate the file only; do not bind it to an env")
    check.set_defaults(func=cmd_randomization_check)

    sample = rnd_sub.add_parser(
        "sample", help="draw N episode samples of every randomizer: CSV and histograms", formatter_class=fmt,
        description=wrap(
            "Bind a file to a one-copy simulation, seed it once and start N episodes (no physics steps), "
            "recording each enabled randomizer's draw. Writes OUT/samples.csv (one row per sample; a "
            "column per randomizer, name[k] for per-element ones) and OUT/histograms.png (one panel "
            "per randomizer, per-element ones pooled, with the file's density or pmf on top). Values are "
            "the raw draws (a scale factor, an offset, ...), before the operation is applied."),
        epilog="examples:\n"
               "  simreal randomization sample randomizations/dactyl.yaml -n 1000 --out outputs/dactyl-samples\n"
               "  simreal randomization sample my.yaml -n 200 --seed 3 --out /tmp/s --no-plot")
    sample.add_argument("file", metavar="FILE", help=file_help)
    sample.add_argument("--env", default="simreal/HandCube-v0", help="env id (default simreal/HandCube-v0)")
    sample.add_argument("-n", "--num-samples", dest="n", type=positive_int, default=1000, metavar="N",
                        help="number of episode samples, >= 1 (default 1000)")
    sample.add_argument("--seed", type=int, default=0, help="env seed; the same seed gives the same CSV (default 0)")
    sample.add_argument("--out", default="outputs/randomization-samples",
                        help="output folder (default outputs/randomization-samples)")
    sample.add_argument("--no-plot", action="store_true", help="write the CSV only")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=cmd_randomization_sample)

    adr = rnd_sub.add_parser(
        "adr", help="how a training run's ADR ranges moved: a table and a plot", formatter_class=fmt,
        description=wrap(
            "Read the ADR ranges a training run logged (rand/adr/<name>/low|high in RUN_DIR/metrics.jsonl, "
            "written while it trained under a file with 'adr' randomizers) and print, per randomizer, its "
            "range at the last logged step, its adr.limits from the run's randomization file and how much "
            "of them it has widened to, then the ADR entropy. Writes RUN_DIR/adr.png: each range as a band "
            "over env steps with its limits. Works on a run that is still training."),
        epilog="examples:\n"
               "  simreal randomization adr runs/hand_adr\n"
               "  simreal randomization adr outputs/study/hand_transfer_adr/runs/ppo-dactyl_adr/seed0 --out adr.png")
    adr.add_argument("run_dir", metavar="RUN_DIR", help="a training run folder (holds metrics.jsonl and config.yaml)")
    adr.add_argument("--out", metavar="PNG", help="where to write the plot (default RUN_DIR/adr.png)")
    adr.add_argument("--no-plot", action="store_true", help="print the table only")
    adr.set_defaults(func=cmd_randomization_adr)

    schema = rnd_sub.add_parser(
        "schema", help="print the JSON Schema of the file format", formatter_class=fmt,
        description=wrap(
            "Print (or write) the JSON Schema of randomization files, for editor completion and "
            "checking (e.g. the YAML language server's '# yaml-language-server: $schema=FILE')."),
        epilog="examples:\n"
               "  simreal randomization schema > randomization.schema.json\n"
               "  simreal randomization schema --out randomization.schema.json")
    schema.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    schema.set_defaults(func=cmd_randomization_schema)
    rnd.set_defaults(func=lambda args: print_help(rnd))
