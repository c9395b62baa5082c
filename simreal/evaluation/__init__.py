"""Transfer evaluation: agents on a rig and on nominal simulation, side by side (``simreal evaluate``)."""

from simreal.evaluation.metrics import EpisodeMetrics, Summary, gap, episode_metrics, summarize
from simreal.evaluation.report import markdown, write_report

__all__ = ["EpisodeMetrics", "Summary", "gap", "markdown", "episode_metrics", "summarize", "write_report"]
