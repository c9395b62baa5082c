"""Pose errors: position (mm) and orientation (degrees), median and 90th percentile."""

from __future__ import annotations

import numpy as np

from simreal.perception.dataset import DatasetError, PoseData


def pose_errors(position: np.ndarray, quat: np.ndarray, true_position: np.ndarray,
                true_quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample position error (mm) and rotation angle between orientations (degrees, sign-invariant)."""
    position_mm = 1000.0 * np.linalg.norm(np.asarray(position, float) - np.asarray(true_position, float), axis=1)
    q = np.asarray(quat, float)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    t = np.asarray(true_quat, float)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    dot = np.clip(np.abs(np.sum(q * t, axis=1)), 0.0, 1.0)
    return position_mm, np.degrees(2.0 * np.arccos(dot))


def summarize(position_mm: np.ndarray, rotation_deg: np.ndarray) -> dict:
    """The numbers a pose evaluation reports."""
    def stats(x: np.ndarray) -> dict:
        return {"median": round(float(np.median(x)), 3), "p90": round(float(np.percentile(x, 90)), 3),
                "mean": round(float(np.mean(x)), 3)}

    return {"n": int(len(position_mm)), "position_mm": stats(position_mm), "rotation_deg": stats(rotation_deg)}


def evaluate(estimator, data: PoseData, batch_size: int = 256) -> dict:
    """Errors of ``estimator`` (a `PoseEstimator`) on a dataset: summary dict."""
    zoom, trained = data.settings["zoom"], estimator.render["zoom"]
    if zoom != trained:
        raise DatasetError(f"the dataset was rendered at zoom {zoom:g} but the estimator was trained on zoom "
                           f"{trained:g} images; render one with --zoom {trained:g}")
    position, quat = estimator.predict(data.images, batch_size=batch_size)
    return summarize(*pose_errors(position, quat, data.position, data.quat))
