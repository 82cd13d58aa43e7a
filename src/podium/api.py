"""The Python API, for notebooks and scripts; the command line calls the same functions.

    import podium
    run = podium.train("data/", model={"name": "resnet18", "img_size": 128}, train={"epochs": 3})
    run.metrics["cv_score"], run.oof.head(), run.submission_path
    podium.predict(run, images="more_images/")      # a DataFrame of labels and probabilities
    run = podium.load("runs/data-resnet18-20261123-101500")
    podium.report(run)                               # (re)writes run.report_path, report.html
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from podium.config import PodiumConfig, from_dict, load_config, merge, to_dict
from podium.core.errors import PodiumError

if TYPE_CHECKING:  # imported where used: podium.runs imports torch, and predict_onnx / serve must not
    from podium.runs.run import Run


def make_config(config: str | Path | PodiumConfig | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
                **sections: dict[str, Any]) -> PodiumConfig:
    """A checked config from a YAML path, a PodiumConfig or a nested dict, then ``sections`` (e.g.
    ``train={"epochs": 3}``), then dotted ``overrides`` (e.g. ``["train.epochs=3"]``)."""
    if isinstance(config, PodiumConfig):
        base = config
    elif isinstance(config, dict):
        base = from_dict(config)
    else:
        base = load_config(config)
    if sections:
        raw = to_dict(base)
        for name, values in sections.items():
            if name not in raw:
                raise PodiumError(f"Unknown config section {name!r}; sections are {', '.join(raw)}.")
            if not isinstance(values, dict):
                raise PodiumError(f"Config section {name} must be a dict of keys, got {values!r}.")
            raw[name] = {**raw[name], **values}
        base = from_dict(raw)
    return merge(base, list(overrides))


def train(data_dir: str | Path, config: str | Path | PodiumConfig | dict | None = None,
          overrides: list[str] | tuple[str, ...] = (), **sections: dict[str, Any]) -> Run:
    """Train K folds on ``data_dir``: OOF metrics and decisions, test predictions and a validated submission.

    ``config``: a YAML file, a PodiumConfig or a dict; ``sections``: ``model={...}``, ``train={...}``, ...;
    ``overrides``: dotted ``section.key=value`` strings. Returns the finished Run.
    """
    from podium.pipeline import train as run_pipeline

    return run_pipeline(data_dir, make_config(config, overrides, **sections))


def resume(run: str | Path | Run) -> Run:
    """Continue an interrupted run where it stopped; returns the finished Run."""
    from podium.pipeline import train as run_pipeline

    return run_pipeline(None, resume=run)


def predict(run: str | Path | Run, images: str | Path | None = None, out: str | Path | None = None,
            tta: list[str] | tuple[str, ...] | None = None, device: str = "auto") -> pd.DataFrame:
    """Predict with every fold of ``run``: the competition's test set (writes test_predictions.csv and the validated
    submission.csv, returned as a DataFrame) or, with ``images``, every image below that folder (ids, labels and
    class probabilities, also written to the run folder or ``out``)."""
    from podium.inference.run import predict_run

    path = predict_run(run, images, out, tuple(tta) if tta else None, device)
    return pd.read_csv(path, dtype=str if images is None else None, keep_default_na=False)


def preview(data_dir: str | Path, config: str | Path | PodiumConfig | dict | None = None,
            overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None, **sections: dict[str, Any]
            ) -> Path:
    """A PNG grid of augmented training images per class, batch augmentation included, as the model will see them;
    returns its path."""
    from podium.reporting.preview import preview as write_preview

    return write_preview(data_dir, make_config(config, overrides, **sections), out)


def load(run_dir: str | Path) -> Run:
    """An existing run folder: ``.config``, ``.metrics``, ``.oof``, ``.decisions``, ``.checkpoints()``, ..."""
    from podium.runs.run import Run

    return Run.open(run_dir)


def ensemble(*members: str | Path | Run, top: int = 0, data: str | Path | None = None,
             where: list[str] | tuple[str, ...] = (), blend: str = "weights", root: str | Path = "runs",
             name: str = "", device: str = "auto") -> Run:
    """Blend finished runs of one data folder into an ensemble folder (OOF, metrics, decisions, validated submission).

    ``members``: run folders (or Runs), or ``top=K`` best runs of the experiment log in ``root`` (``data``: of that
    data folder; ``where``: ``["model.img_size=160"]``). ``blend``: mean, logit_mean, rank_mean or weights (fitted on
    the OOF predictions; ``metrics["cv_score"]`` is the honest, cross-fitted score). Returns the ensemble folder.
    """
    from podium.multirun.ensemble import ensemble as run_ensemble
    from podium.runs.run import Run

    paths = [m.path if isinstance(m, Run) else m for m in members]
    return run_ensemble(paths, top, data, where, blend, root, name, device)


def sweep(data_dir: str | Path, grid: list[str] | tuple[str, ...],
          config: str | Path | PodiumConfig | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
          name: str = "", jobs: int = 1, **sections: dict[str, Any]) -> pd.DataFrame:
    """Train every combination of the ``grid`` axes (``["model.name=a,b", "model.img_size=128,160"]``) on top of the
    config, each an ordinary run; finished combinations of an earlier call are skipped and an interrupted one
    resumes. ``jobs`` > 1 runs combinations in parallel processes sharing the CPU cores. Returns the sweep table
    (also ``<run.root>/sweeps/<name>/sweep.csv``)."""
    from podium.multirun.sweep import plan_sweep, run_sweep

    return run_sweep(plan_sweep(data_dir, make_config(config, overrides, **sections), grid, name, jobs))


def search(data_dir: str | Path, space: str | Path, trials: int, config: str | Path | PodiumConfig | dict | None = None,
           overrides: list[str] | tuple[str, ...] = (), storage: str = "", study: str = "", jobs: int = 1,
           **sections: dict[str, Any]) -> dict[str, Any]:
    """Optuna search over the YAML ``space`` (``section.key: {type, low, high, log, choices}``) on top of the config,
    each trial a run, until the study holds ``trials`` finished trials; ``storage``: an Optuna RDB URL (default:
    SQLite in the runs root, shareable by several processes), ``study``: its name (continued when it exists);
    ``jobs`` > 1 runs trials in that many processes sharing the CPU cores. Returns the best trial: number, value,
    params, run_dir, metric."""
    from podium.multirun.search import search as run_search

    return run_search(data_dir, make_config(config, overrides, **sections), space, trials, storage, study, jobs)


def report(run: str | Path | Run) -> Path:
    """(Re)write the self-contained ``report.html`` of a run or an ensemble folder from the folder alone (no
    retraining); returns its path (``run.report_path``)."""
    from podium.reporting import build_report

    return build_report(run)


def export(run: str | Path | Run, out: str | Path | None = None, folds: str = "all", tta: bool = False,
           opset: int = 18, fp16: bool = False, quantize: str = "", layout: str = "nhwc") -> dict[str, Any]:
    """Export a run or ensemble folder to one ONNX graph (uint8 images in, podium's probabilities out; default
    ``<folder>/export/model.onnx``) and check it against podium on OOF images; returns the report (``export.json``).
    Raises PodiumError when parity is worse than the precision's tolerance (int8: reported, not enforced)."""
    from podium.deploy.writer import export_model

    return export_model(getattr(run, "path", run), out, folds, tta, opset, fp16, quantize, layout)


def predict_onnx(onnx: str | Path, images: str | Path, out: str | Path | None = None) -> Path:
    """Label every image below ``images`` with an exported model through onnxruntime, without torch; returns the
    CSV (ids, labels, class probabilities)."""
    from podium.deploy.runtime import predict_images

    return predict_images(onnx, images, out)


def serve(target: str | Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_images: int = 16, max_mb: float = 20.0, max_mpx: float = 40.0) -> None:
    """Serve an ONNX file (or a run / ensemble folder, exported first when it has no export/model.onnx) over HTTP:
    an upload page at /, POST /predict, /health, /info. A token is required on any address but localhost; requests
    are bounded to ``max_images`` images, ``max_mb`` MB and ``max_mpx`` megapixels per image."""
    from podium.serving.app import Limits
    from podium.serving.server import serve as run_server

    run_server(target, host, port, token, Limits(int(max_mb * 1024 * 1024), max_images, int(max_mpx * 1e6)))
