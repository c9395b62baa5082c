"""The study report: per row and setting the metric with its intervals, the verdict, the table, the figure."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from simreal.evaluation.stats import BOOTSTRAP_SAMPLES, CONFIDENCE, bootstrap_mean, bootstrap_ratio


class StudyError(ValueError):
    """A study file or run folder that cannot be used as asked (one line)."""


def write_json(path: pathlib.Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def episode_values(episodes: Sequence[Mapping], metric: str) -> np.ndarray:
    """The per-episode value of ``metric`` (``consecutive_successes`` or ``return``)."""
    key = "successes" if metric == "consecutive_successes" else "ret"
    values = [e.get(key) for e in episodes]
    if any(v is None for v in values):
        raise StudyError(f"metric {metric!r}: the env reports no {key} (use metric: return)")
    return np.asarray(values, dtype=float)


def summarize_study(study, results: Mapping[tuple[str, int, str], Mapping]) -> dict:
    """The report dict from per-(row, seed, setting) evaluation results."""
    settings = ["nominal", *study.rigs]
    rows: dict[str, dict] = {}
    for (label, seed, setting), result in results.items():
        rows.setdefault(label, {}).setdefault(setting, {})[seed] = result
    table = []
    for label, by_setting in rows.items():
        entry: dict[str, Any] = {"row": label, "settings": {}}
        seeds = sorted(by_setting["nominal"])
        sim_groups = [episode_values(by_setting["nominal"][s]["episodes"], study.metric) for s in seeds]
        for setting in settings:
            res = by_setting[setting]
            groups = [episode_values(res[s]["episodes"], study.metric) for s in seeds]
            mean, lo, hi = bootstrap_mean(groups)
            drops = [[float(bool(e.get("dropped"))) for e in res[s]["episodes"]] for s in seeds]
            has_drops = all(e.get("dropped") is not None for s in seeds for e in res[s]["episodes"])
            cell: dict[str, Any] = {"mean": mean, "ci95": [lo, hi],
                                    "median": float(np.median(np.concatenate(groups))),
                                    "episodes": int(sum(len(g) for g in groups)), "seeds": seeds}
            if has_drops:
                d, dlo, dhi = bootstrap_mean(drops)
                cell["drop_rate"], cell["drop_rate_ci95"] = d, [dlo, dhi]
            if setting != "nominal":
                r, rlo, rhi = bootstrap_ratio(groups, sim_groups)
                cell["ratio_to_sim"], cell["ratio_ci95"] = r, [rlo, rhi]
            errors = [res[s].get("pose_error") for s in seeds if res[s].get("pose_error")]
            if errors:
                cell["pose_error"] = errors[0] if len(errors) == 1 else {
                    k: float(np.mean([e[k] for e in errors])) for k in errors[0]}
            entry["settings"][setting] = cell
        table.append(entry)
    report = {"study": study.name, "description": study.description, "source": str(study.source),
              "metric": study.metric, "success_threshold": study.success_threshold, "settings": settings,
              "episodes_per_seed": study.episodes, "eval_seed": study.eval_seed, "seeds": list(study.seeds),
              "confidence": CONFIDENCE, "bootstrap_samples": BOOTSTRAP_SAMPLES, "rows": table}
    report["verdict"] = verdict(report)
    return report


def _metric_words(metric: str) -> str:
    return "consecutive successes" if metric == "consecutive_successes" else "return"


def verdict(report: Mapping) -> list[str]:
    """Plain sentences on what the numbers show; no winner where every agent fails."""
    metric, threshold = report["metric"], report["success_threshold"]
    words = _metric_words(metric)
    rows = report["rows"]
    passes = lambda cell: cell["mean"] >= threshold  # noqa: E731
    learned = [r for r in rows if passes(r["settings"]["nominal"])]
    lines = []
    if len(report.get("seeds", [])) == 1:
        lines.append("One training seed: the intervals cover episode-to-episode variation only, not how another "
                     "seed would train; run more seeds (--seeds) before calling a difference.")
    if not learned:
        lines.append(f"No agent learned the task: every agent's mean {words} on nominal simulation is below "
                     f"{threshold:g}, so there is no transfer to compare and no winner.")
        return lines
    failed = [r["row"] for r in rows if r not in learned]
    if failed:
        lines.append(f"Below {threshold:g} mean {words} on nominal simulation (not compared): {', '.join(failed)}.")
    for setting in report["settings"][1:]:
        cells = [(r["row"], r["settings"][setting]) for r in learned]
        working = [(name, c) for name, c in cells if passes(c)]
        if not working:
            lines.append(f"On {setting} every agent fails (mean {words} below {threshold:g}): no winner.")
            continue
        ranked = sorted(working, key=lambda nc: nc[1]["mean"], reverse=True)
        best, cell = ranked[0]
        kept = cell.get("ratio_to_sim")
        keeps = (f", keeping {kept:.1%} of its simulated {words} (95% CI {cell['ratio_ci95'][0]:.1%}-"
                 f"{cell['ratio_ci95'][1]:.1%})" if kept is not None else "")
        text = f"On {setting}, {best} does best: mean {words} {cell['mean']:.2f} " \
               f"(95% CI {cell['ci95'][0]:.2f}-{cell['ci95'][1]:.2f}){keeps}."
        if len(ranked) > 1 and ranked[1][1]["ci95"][1] >= cell["ci95"][0]:
            text += f" Its interval overlaps {ranked[1][0]}'s, so the two are not separable at 95%."
        others = [n for n, c in cells if not passes(c)]
        if others:
            text += f" Below {threshold:g} there: {', '.join(others)}."
        lines.append(text)
    return lines


# ----------------------------------------------------------------------------- report
def _fmt_ci(value: float | None, ci: Sequence[float | None] | None, digits: int = 2, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{value:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]" if ci and ci[0] is not None else f"{value:.1%}"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def markdown(report: Mapping) -> str:
    words = _metric_words(report["metric"])
    settings = report["settings"]
    lines = [f"# Study: {report['study']}", ""]
    if report.get("description"):
        lines += [report["description"], ""]
    lines += [f"Mean {words} per episode with bootstrap 95% intervals ({report['episodes_per_seed']} episodes per "
              f"seed and setting, seeds {', '.join(map(str, report['seeds']))}, episode seeds from "
              f"{report['eval_seed']}); 'kept' is rig / nominal sim.", ""]
    head = ["agent", "nominal sim"] + list(settings[1:]) + [f"kept on {s}" for s in settings[1:]]
    has_drops = any("drop_rate" in c for r in report["rows"] for c in r["settings"].values())
    if has_drops:
        head += [f"drops {s}" for s in settings]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        cells = r["settings"]
        row = [r["row"]] + [_fmt_ci(cells[s]["mean"], cells[s]["ci95"]) for s in settings]
        row += [_fmt_ci(cells[s].get("ratio_to_sim"), cells[s].get("ratio_ci95"), pct=True) for s in settings[1:]]
        if has_drops:
            row += [f"{cells[s]['drop_rate']:.0%}" if "drop_rate" in cells[s] else "-" for s in settings]
        lines.append("| " + " | ".join(row) + " |")
    vision = [(r["row"], s, c["pose_error"]) for r in report["rows"] for s, c in r["settings"].items()
              if c.get("pose_error")]
    if vision:
        lines += ["", "Pose estimator error on the episodes it drove (median position mm / orientation deg):", ""]
        for name, setting, e in vision:
            lines.append(f"- {name} on {setting}: {e['position_mm_median']:.1f} mm / {e['angle_deg_median']:.1f} deg")
    lines += ["", "## Verdict", "", *[f"- {line}" for line in report["verdict"]]]
    return "\n".join(lines) + "\n"


def plot(report: Mapping, path: pathlib.Path) -> None:
    """Panels side by side: the mean metric per setting, the fraction of it kept on each rig (on its own
    axis, where differences of a few percent show), and the drop rate where the task has drops."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, settings = report["rows"], report["settings"]
    words = _metric_words(report["metric"])
    panels = [("mean", "ci95", f"mean {words}", settings),
              ("ratio_to_sim", "ratio_ci95", f"{words} kept on the rig (rig / sim)", settings[1:])]
    if any("drop_rate" in c for r in rows for c in r["settings"].values()):
        panels.append(("drop_rate", "drop_rate_ci95", "drop rate", settings))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 + (1.2 * len(rows) + 1.5) * len(panels), 4.4),
                             squeeze=False)
    x = np.arange(len(rows))
    colors = plt.get_cmap("tab10")
    for ax, (key, ci_key, label, shown) in zip(axes[0], panels):
        width = 0.8 / len(shown)
        for k, setting in enumerate(shown):
            values = np.array([r["settings"][setting].get(key) for r in rows], dtype=float)  # None -> nan
            cis = np.array([[np.nan if v is None else v for v in (r["settings"][setting].get(ci_key) or [None] * 2)]
                            for r in rows], dtype=float)
            err = np.nan_to_num(np.abs(np.stack([values - cis[:, 0], cis[:, 1] - values])))
            ax.bar(x + (k - (len(shown) - 1) / 2) * width, values, width, yerr=err, capsize=3,
                   color=colors(settings.index(setting)), label=setting)
        if key == "mean":
            ax.axhline(report["success_threshold"], color="black", lw=0.8, ls="--", label="success threshold")
        elif key == "drop_rate":
            ax.set_ylim(0.0, 1.0)
        else:
            bounds = [v for r in rows for s in shown for v in (r["settings"][s].get("ratio_ci95") or [])
                      if v is not None]
            # zoomed: a few percent apart is the whole story
            ax.set_ylim(max(0.0, min(bounds + [1.0]) - 0.02), max(bounds + [1.0]) + 0.01)
            ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(x, [r["row"] for r in rows], rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.set_title(f"{label}\n(95% bootstrap CI)", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"study {report['study']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: str | pathlib.Path, report: Mapping) -> dict[str, pathlib.Path]:
    from simreal.evaluation import report as transfer_report

    return transfer_report.write_report(out, dict(report), markdown_of=markdown, plot_to=plot, plot_name="report.png")
