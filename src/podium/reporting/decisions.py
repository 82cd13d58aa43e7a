"""The report's decisions section: the decisions fitted on the OOF predictions (a threshold, per-class thresholds,
ordinal cut points), the plain decoding's scores next to theirs (metrics.json ``decision_scores``), and what the task
says to draw of them (``Task.decision_view``): the rule's metric as each decision moves, the continuous score per
true class with the cuts, a per-class table. Nothing here knows a task by name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from podium.reporting import plots
from podium.reporting.html import img, key_values, note, table
from podium.reporting.sections import Inputs, run_metrics


def _shown(value: Any) -> str:
    """A decision's value as the page shows it (numbers to 3 decimals, lists joined)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def decisions(inp: Inputs) -> str:
    """The fitted decisions, their scores against the plain decoding's, and the task's curves and tables of them."""
    metrics = run_metrics(inp.run)
    if metrics is None or inp.oof is None:
        return note("The run has no OOF predictions yet (it did not finish).")
    fitted = inp.run.decisions
    if not fitted:
        return "<p>No decision is fitted for this task: each prediction is the most likely class.</p>"
    parts = ["<h3>In use</h3>", key_values([(k, _shown(v)) for k, v in fitted.items()])]
    scores = metrics.get("decision_scores") or {}
    if scores:
        parts += ["<h3>Plain decoding against the fitted decisions (metrics.json decision_scores)</h3>",
                  "<p>Scored on the same OOF rows the decisions were fitted on, so the fitted columns are slightly "
                  "optimistic.</p>", table(pd.DataFrame([scores]))]
    probs = inp.oof[inp.classes].to_numpy(dtype=np.float64)
    targets = inp.targets()
    view = inp.task.decision_view(targets, probs, fitted, inp.cfg.predict, inp.classes)
    if view is None:
        return "".join(parts)
    figures = []
    if view.curves:
        figures.append(img(plots.to_png(plots.decision_curves(view.curves, view.name)), view.name))
    if view.score is not None:
        truth = inp.truth().argmax(axis=1)  # score views belong to single-label tasks: one class per row
        figures.append(img(plots.to_png(plots.score_distribution(view.score, truth, inp.classes, view.cuts,
                                                                 view.plain_cuts, view.score_name)),
                           "score distribution"))
    if len(view.curves) > 1:  # a grid of panels needs the page's width to be legible
        parts += figures
    else:
        parts.append('<div class="row">' + "".join(f"<div>{f}</div>" for f in figures) + "</div>")
    if len(view.curves) < len(view.table):
        parts.append(note(f"Curves are drawn for the first {len(view.curves)} classes; the table has them all."))
    if view.table:
        parts += ["<h3>Per-class thresholds (each class's column on its own)</h3>",
                  table(pd.DataFrame(list(view.table)))]
    return "".join(parts)
