"""The hand sim-to-real study as a benchmark: DR-PPO against nominal PPO on held-out hand rigs.

Runs (or, with --no-train, only evaluates) ``studies/hand_transfer.yaml`` into --out, then prints
JSON with the study report and the targets, checked in the same run against its own baseline (PPO
trained without randomization, same budget and seed):

  targets.dr_keeps_80pct[rig]        DR-PPO's rig-to-sim ratio of mean consecutive successes >= 0.8
  targets.nominal_keeps_less[rig]    nominal PPO's ratio is below DR-PPO's on that rig
  targets.dr_learned                 DR-PPO's nominal-sim mean reaches the study's success threshold

With --save the JSON goes to benchmarks/results/hand_transfer_<date>.json and the figure beside it.
The DR row is ``ppo-dactyl_adr`` where the study has it (studies/hand_transfer_adr.yaml), else ``ppo-dactyl``.
With --ship (or --ship ROW,ROW for only some) the cells trained by the study go to assets/policies/ (``ppo-dactyl`` or ``ppo-dactyl_adr`` as
``ppo_dr`` with ``vision: true``, ``ppo-none`` as ``ppo_nominal``, ``dreamer-none`` as ``dreamer_v3``;
--pose-estimator DIR adds a pose estimator run as ``pose_estimator``), each with its trained.json.
A killed run continues where it stopped (same --out): finished cells are skipped, evaluations
of unchanged policies read back.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import RESULTS, emit, machine  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "hand_transfer.yaml"
KEEP = 0.8
SHIP = {"ppo-dactyl": ("ppo_dr", {"vision": True}), "ppo-dactyl_adr": ("ppo_dr", {"vision": True}),
        "ppo-none": ("ppo_nominal", {}), "dreamer-none": ("dreamer_v3", {})}
DR_ROWS, NOMINAL_ROW = ("ppo-dactyl_adr", "ppo-dactyl"), "ppo-none"  # the first DR row present is the claim's


def targets(report: dict) -> dict:
    """The benchmark's claims, from the report's rows (None where a row is missing)."""
    rows = {r["row"]: r["settings"] for r in report["rows"]}
    dr_row = next((row for row in DR_ROWS if row in rows), DR_ROWS[-1])
    dr, nominal = rows.get(dr_row), rows.get(NOMINAL_ROW)
    out: dict = {"keep_fraction": KEEP, "dr_row": dr_row, "dr_keeps_80pct": {}, "nominal_keeps_less": {},
                 "ratios": {}}
    if dr is None:
        return out
    out["dr_learned"] = bool(dr["nominal"]["mean"] >= report["success_threshold"])
    for rig in report["settings"][1:]:
        ratio_dr = dr[rig].get("ratio_to_sim")
        ratio_nominal = nominal[rig].get("ratio_to_sim") if nominal else None
        out["ratios"][rig] = {dr_row: ratio_dr, NOMINAL_ROW: ratio_nominal}
        out["dr_keeps_80pct"][rig] = None if ratio_dr is None else bool(ratio_dr >= KEEP)
        out["nominal_keeps_less"][rig] = (None if ratio_dr is None or ratio_nominal is None
                                          else bool(ratio_nominal < ratio_dr))
    flat = [*out["dr_keeps_80pct"].values(), *out["nominal_keeps_less"].values(), out["dr_learned"]]
    out["all_met"] = bool(flat) and all(v is True for v in flat)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default=str(STUDY), help="the study file (default studies/hand_transfer.yaml)")
    parser.add_argument("--out", default="outputs/study/hand_transfer", help="the study's output folder")
    parser.add_argument("--jobs", type=int, default=2, help="cells trained and rows evaluated side by side (2)")
    parser.add_argument("--steps", type=int, help="env steps per PPO cell (replaces the study file's)")
    parser.add_argument("--episodes", type=int, help="episodes per row and setting (replaces the study file's)")
    parser.add_argument("--agents", help="comma-separated agent names of the study file to run (default: all)")
    parser.add_argument("--no-train", action="store_true", help="only evaluate the cells already trained")
    parser.add_argument("--pose-estimator", help="a pose estimator run folder to ship as assets/policies/pose_estimator")
    parser.add_argument("--ship", nargs="?", const="all", metavar="ROWS",
                        help="copy the trained cells to assets/policies/ (all, or only the comma-separated rows, "
                             "e.g. --ship ppo-dactyl_adr)")
    parser.add_argument("--note", default="", help="a sentence on how this run was made (kept in the JSON)")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/hand_transfer_<date>.json")
    args = parser.parse_args(argv)
    wanted = None if args.ship in (None, "all") else {r.strip() for r in args.ship.split(",")}
    unknown = sorted((wanted or set()) - set(SHIP))
    if unknown:
        parser.error(f"--ship: {', '.join(unknown)}: not a row this benchmark ships (it ships {', '.join(SHIP)})")

    from simreal.evaluation.study import StudyError, load_study, plan_cells, run_study, with_settings
    from simreal.evaluation.shipped import ASSETS_DIR, ship_run

    agents = [a.strip() for a in args.agents.split(",")] if args.agents else None
    start = time.perf_counter()
    try:
        study = with_settings(load_study(args.study), steps=args.steps, episodes=args.episodes, agents=agents)
        report = run_study(study, args.out, jobs=args.jobs, train=not args.no_train, progress=False,
                           log=lambda line: print(line, file=sys.stderr, flush=True))
    except StudyError as err:
        parser.exit(2, f"hand_transfer: {err}\n")
    shipped = {}
    if args.ship:
        for cell in plan_cells(study, args.out):
            if cell.trained_here and cell.label in SHIP and (wanted is None or cell.label in wanted) \
                    and (cell.run_dir / "policy.pt").is_file():
                name, extra = SHIP[cell.label]
                shipped[name] = ship_run(cell.run_dir, ASSETS_DIR / name, extra=extra,
                                         description=f"{study.name} study cell {cell.label}/seed{cell.seed}")
        if args.pose_estimator:
            shipped["pose_estimator"] = ship_run(args.pose_estimator, ASSETS_DIR / "pose_estimator",
                                                 description="pose CNN used by the vision rows")
    name = pathlib.Path(args.study).stem
    result = {"benchmark": name, "command": "python benchmarks/hand_transfer.py " + " ".join(argv or sys.argv[1:]),
              "note": args.note, "machine": machine(),
              "evaluation_minutes": round((time.perf_counter() - start) / 60, 1),
              "training": {k: {kk: v.get(kk) for kk in ("env_steps", "steps", "minutes_last_session", "commit")}
                           for k, v in report["training"].items()},
              "targets": targets(report), "verdict": report["verdict"],
              "shipped": {k: {kk: v.get(kk) for kk in ("steps", "steps_total", "minutes", "minutes_total", "commit")}
                          for k, v in shipped.items()},
              "report": {k: v for k, v in report.items() if k not in ("paths", "training")}}
    if args.save:
        stem = f"{name}_{datetime.date.today().isoformat()}"
        shutil.copyfile(report["paths"]["plot"], RESULTS / f"{stem}.png")
        result["plot"] = f"benchmarks/results/{stem}.png"
    emit(name, result, args.save)
    return result


if __name__ == "__main__":
    main()
