"""The run report: ``report.html``, one self-contained page built from a run folder alone (through ``Run``'s
readers; no retraining): data, augmentation preview, learning rate and training curves, OOF metrics and plots, the
fitted decisions, the top losses, the suspect labels, Grad-CAM, config and provenance. ``plots`` draws, ``gradcam``
explains, ``html`` lays out, ``sections`` reads the run, ``decisions`` shows what the task fitted, ``suspects`` the
labels the OOF predictions contradict; an ensemble folder (``Ensemble``) gets ``ENSEMBLE_SECTIONS``, the run's
sections that need no fold logs or checkpoints and its own from ``ensembles``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from podium.core.console import Reporter
from podium.runs.ensemble import Ensemble, open_folder
from podium.runs.run import Run

SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Run"), ("data", "Data"), ("augmentations", "Augmentation preview"), ("training", "Training"),
    ("oof_metrics", "Out-of-fold metrics"), ("decisions", "Decisions"), ("top_losses", "Top losses"),
    ("suspects", "Suspect labels"), ("gradcam", "Grad-CAM"), ("config", "Config"),
)
ENSEMBLE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Ensemble"), ("members", "Members"), ("data", "Data"), ("oof_metrics", "Out-of-fold metrics"),
    ("decisions", "Decisions"), ("top_losses", "Top losses"), ("config", "Config"),
)


def _builders(ensemble: bool) -> dict[str, Callable]:
    """Section anchor -> the function building it (an ensemble's own sections replace the run's)."""
    from podium.reporting import decisions, ensembles, sections, suspects

    out: dict[str, Callable] = {a: getattr(sections, a) for a, _ in SECTIONS if hasattr(sections, a)}
    out.update(decisions=decisions.decisions, suspects=suspects.suspect_labels)
    if ensemble:
        out.update(overview=ensembles.overview, members=ensembles.members, config=ensembles.config)
    return out


def build_report(run: str | Path | Run, reporter: Reporter | None = None) -> Path:
    """Write ``report.html`` into the run or ensemble folder (from the folder alone) and return its path. A section
    that cannot be built shows a one-line note instead."""
    from podium.core.progress import track
    from podium.reporting import ensembles, html, sections

    run = run if isinstance(run, Run) else open_folder(run)
    ensemble = isinstance(run, Ensemble)
    t0 = time.time()
    inp = ensembles.gather_ensemble(run) if ensemble else sections.gather(run)
    builders, layout = _builders(ensemble), ENSEMBLE_SECTIONS if ensemble else SECTIONS
    parts = []
    for anchor, title in track(layout, len(layout), "report"):
        build: Callable[[sections.Inputs], str] = builders[anchor]
        try:
            body = build(inp)
        except Exception as e:  # noqa: BLE001 - one broken section must not cost the whole report
            body = html.note(f"This section could not be built: {type(e).__name__}: {e}")
        parts.append(html.Section(anchor, title, body))
    score = ""
    if inp.oof is not None and run.finished:
        m = run.metrics
        in_sample = m.get("cv_score_in_sample") if m.get("cross_fit") else None  # a cross-fitted decision's
        score = f" - CV {m['metric']} {m['cv_score']:.4f}" + ("" if in_sample is None else
                                                               f" (in-sample {in_sample:.4f})")
    subtitle = f"{inp.info.get('task')} task, {inp.model}{score} - built in {time.time() - t0:.1f} s"
    path = run.write_report(html.page(f"podium report: {run.path.name}", subtitle, parts))
    if reporter is not None:
        reporter.print(f"report: {path} ({time.time() - t0:.1f} s)")
    return path


def report_after_training(run: Run, reporter: Reporter) -> Path | None:
    """``build_report`` at the end of ``podium train`` or ``podium ensemble``: a failure is a warning line, never a
    failed run or ensemble."""
    try:
        return build_report(run, reporter)
    except Exception as e:  # noqa: BLE001 - the run itself has finished and is valid
        reporter.warn(f"the report could not be written ({type(e).__name__}: {e}); "
                       f"`podium report {run.path}` retries.")
        return None
