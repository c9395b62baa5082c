"""Transfer evaluation: agents on a rig and on nominal simulation, side by side (``simreal evaluate``)."""

from simreal.evaluation.metrics import EpisodeResult, Summary, gap, run_episode, summarize
from simreal.evaluation.report import markdown, write_report

__all__ = ["EpisodeResult", "Summary", "gap", "markdown", "run_episode", "summarize", "write_report"]
