"""The transfer report: agents side by side, on nominal simulation and on a rig.

`write_report(out_dir, report)` writes ``report.json`` (everything, per
episode too), ``report.md`` (one table a person reads) and ``transfer.png``
(return, and consecutive successes where the task has them, sim next to rig
per agent).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict) -> str:
    agents = report["agents"]
    lines = [f"# Transfer report: {report['rig']['name']}", "",
             f"Rig: {report['rig'].get('description', report['rig']['name'])} "
             f"({report['rig'].get('kind', 'sim')}). {report['episodes']} episodes per agent and setting, "
             f"seed {report['seed']}.", ""]
    has_succ = any(a["sim"].get("successes_median") is not None for a in agents)
    head = ["agent", "trained with", "return sim", "return rig", "gap (sim - rig)"]
    if has_succ:
        head += ["successes sim (median / max)", "successes rig (median / max)", "drop rate rig",
                 "time to goal rig (s)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in agents:
        sim, rig, g = a["sim"], a["rig"], a["gap"]
        row = [a["name"], a.get("randomization") or "-",
               f"{_fmt(sim['return_mean'])} ± {_fmt(sim['return_std'])}",
               f"{_fmt(rig['return_mean'])} ± {_fmt(rig['return_std'])}", _fmt(g.get("return_mean"))]
        if has_succ:
            row += [f"{_fmt(sim.get('successes_median'))} / {_fmt(sim.get('successes_max'), 0)}",
                    f"{_fmt(rig.get('successes_median'))} / {_fmt(rig.get('successes_max'), 0)}",
                    _fmt(rig.get("drop_rate"), 2), _fmt(rig.get("time_to_goal_median"), 2)]
        lines.append("| " + " | ".join(row) + " |")
    vision = [a for a in agents if a.get("pose_error")]
    if vision:
        lines += ["", "Pose estimator error while it drove the +vision rows (median position mm / orientation deg "
                      "against the measured pose):", ""]
        for a in vision:
            parts = [f"{where} {e['position_mm_median']:.1f} mm / {e['angle_deg_median']:.1f} deg"
                     for where, e in a["pose_error"].items() if e]
            lines.append(f"- {a['name']}: {'; '.join(parts)}")
    wm = [a for a in agents if a.get("prediction_error") is not None]
    if wm:
        lines += ["", "World-model prediction error on the rig's recorded episodes "
                      "(open-loop, mean squared error of the decoded observation):", ""]
        for a in wm:
            lines.append(f"- {a['name']}: {a['prediction_error']:.4g}")
    if len(agents) > 1:
        lines += ["", headline(agents)]
    return "\n".join(lines) + "\n"


def headline(agents: list[dict]) -> str:
    """The agent with the smallest sim-to-rig return gap, among those that do the task on nominal sim.

    Where the task counts successes (the hand), an agent that reaches no goal on nominal simulation
    (mean consecutive successes below 1) has nothing to transfer: when every agent is such, no agent is
    named (a gap of 0 between two failures is no achievement).
    """
    working = [a for a in agents if a["sim"].get("successes_mean") is None or a["sim"]["successes_mean"] >= 1.0]
    if not working:
        return ("No agent reaches a goal on nominal simulation (mean consecutive successes below 1): "
                "there is no transfer to compare, and no smallest gap to name.")
    best = min(working, key=lambda a: abs(a["gap"].get("return_mean") or 0.0))
    skipped = [a["name"] for a in agents if a not in working]
    note = f" ({', '.join(skipped)}: no goal reached on nominal simulation, not compared)" if skipped else ""
    return f"Smallest sim-to-rig return gap: **{best['name']}** ({_fmt(best['gap'].get('return_mean'))}){note}."


def plot(report: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = report["agents"]
    has_succ = any(a["sim"].get("successes_median") is not None for a in agents)
    panels = 2 + has_succ
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels + 0.8 * len(agents), 4), squeeze=False)
    x = np.arange(len(agents))
    names = [a["name"] for a in agents]
    ax = axes[0, 0]
    for k, (where, color) in enumerate((("sim", "tab:blue"), ("rig", "tab:orange"))):
        means = [a[where]["return_mean"] for a in agents]
        stds = [a[where]["return_std"] for a in agents]
        ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=stds, color=color, capsize=3,
               label="nominal sim" if where == "sim" else report["rig"]["name"])
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("episode return")
    ax.set_title("return: sim vs rig")
    ax.legend(loc="lower left")
    # the gap on its own axis: a few percent of the return, invisible on the return bars
    ax = axes[0, 1]
    gaps = [a["gap"].get("return_mean") or 0.0 for a in agents]
    ax.bar(x, gaps, 0.5, color=["tab:green" if g == min(gaps, key=abs) else "tab:gray" for g in gaps])
    for xi, g in zip(x, gaps):
        ax.annotate(f"{g:.1f}", (xi, g), ha="center", va="bottom" if g >= 0 else "top", fontsize=9)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("return gap (sim - rig)")
    ax.set_title("sim-to-rig gap (smaller is better)")
    if has_succ:
        ax = axes[0, 2]
        for k, (where, color) in enumerate((("sim", "tab:blue"), ("rig", "tab:orange"))):
            data = [[e["successes"] or 0 for e in a["episodes"][where]] for a in agents]
            parts = ax.boxplot(data, positions=x + (k - 0.5) * 0.38, widths=0.32, patch_artist=True)
            for box in parts["boxes"]:
                box.set_facecolor(color)
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel("consecutive successes")
        ax.set_title("consecutive successes per episode")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: str | pathlib.Path, report: dict, markdown_of=None, plot_to=None,
                 plot_name: str = "transfer.png") -> dict[str, pathlib.Path]:
    """``report.json``, ``report.md`` and the figure in ``out_dir`` (the study report passes its own
    ``markdown_of(report)`` and ``plot_to(report, path)``); the JSON is written atomically."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / plot_name}
    tmp = paths["json"].with_name("report.json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(paths["json"])
    paths["markdown"].write_text((markdown_of or markdown)(report))
    (plot_to or plot)(report, paths["plot"])
    return paths
