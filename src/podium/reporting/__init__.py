"""The run report: ``report.html``, one self-contained page built from a run folder alone (through ``Run``'s
readers; no retraining): data, augmentation preview, learning rate and training curves, OOF metrics and plots, the
top losses, Grad-CAM, config and provenance. ``plots`` draws, ``gradcam`` explains, ``html`` lays out, ``sections``
reads the run; an ensemble folder can get its page from the same sections once it has a ``Run``-like owner."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from podium.console import Reporter
from podium.runs.run import Run

SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Run"), ("data", "Data"), ("augmentations", "Augmentation preview"), ("training", "Training"),
    ("oof_metrics", "Out-of-fold metrics"), ("top_losses", "Top losses"), ("gradcam", "Grad-CAM"),
    ("config", "Config"),
)


def build_report(run: str | Path | Run, reporter: Reporter | None = None) -> Path:
    """Write ``report.html`` into the run folder (from the folder alone) and return its path. A section that
    cannot be built shows a one-line note instead."""
    from podium.progress import track
    from podium.reporting import html, sections

    run = run if isinstance(run, Run) else Run.open(run)
    t0 = time.time()
    inp = sections.gather(run)
    parts = []
    for anchor, title in track(SECTIONS, len(SECTIONS), "report"):
        build: Callable[[sections.Inputs], str] = getattr(sections, anchor)
        try:
            body = build(inp)
        except Exception as e:  # noqa: BLE001 - one broken section must not cost the whole report
            body = html.note(f"This section could not be built: {type(e).__name__}: {e}")
        parts.append(html.Section(anchor, title, body))
    score = ""
    if inp.oof is not None and (run.path / "metrics.json").is_file():
        m = run.metrics
        score = f" - CV {m['metric']} {m['cv_score']:.4f}"
    subtitle = f"{inp.info.get('task')} task, {inp.cfg.model.name}{score} - built in {time.time() - t0:.1f} s"
    path = run.write_report(html.page(f"podium report: {run.path.name}", subtitle, parts))
    if reporter is not None:
        reporter.print(f"report: {path} ({time.time() - t0:.1f} s)")
    return path


def report_after_training(run: Run, reporter: Reporter) -> Path | None:
    """``build_report`` at the end of ``podium train``: a failure is a warning line, never a failed run."""
    try:
        return build_report(run, reporter)
    except Exception as e:  # noqa: BLE001 - the run itself has finished and is valid
        reporter.print(f"[yellow]warning:[/yellow] the report could not be written ({type(e).__name__}: {e}); "
                       f"`podium report {run.path}` retries.")
        return None
