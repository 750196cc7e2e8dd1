"""A small server-rendered SVG chart of a job's runs: rows loaded (bars) and duration (line)."""

from __future__ import annotations

from dataclasses import dataclass

from ml_platform.models import JobRun

WIDTH, HEIGHT, PAD = 640, 160, 28


@dataclass
class Chart:
    bars: list[dict]
    line: str
    max_rows: int
    max_seconds: float
    width: int = WIDTH
    height: int = HEIGHT


def runs_chart(runs: list[JobRun]) -> Chart | None:
    """Oldest first. Failed runs show as red bars of their loaded rows (usually 0)."""
    if not runs:
        return None
    max_rows = max((r.rows_loaded for r in runs), default=0) or 1
    max_seconds = max((r.duration_seconds or 0 for r in runs), default=0) or 1
    step = (WIDTH - 2 * PAD) / len(runs)
    bars, points = [], []
    for i, run in enumerate(runs):
        h = (HEIGHT - 2 * PAD) * run.rows_loaded / max_rows
        x = PAD + i * step
        bars.append({"x": round(x + step * 0.15, 1), "y": round(HEIGHT - PAD - h, 1), "w": round(step * 0.7, 1),
                     "h": round(max(h, 1), 1), "run": run})
        if run.duration_seconds is not None:
            y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * run.duration_seconds / max_seconds
            points.append(f"{x + step / 2:.1f},{y:.1f}")
    return Chart(bars=bars, line=" ".join(points), max_rows=max_rows, max_seconds=round(max_seconds, 1))
