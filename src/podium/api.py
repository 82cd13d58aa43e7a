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
from typing import Any

import pandas as pd

from podium.config import PodiumConfig, from_dict, load_config, to_dict
from podium.config import merge as merge_overrides
from podium.core.errors import PodiumError
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
    return merge_overrides(base, list(overrides))


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
            tta: list[str] | tuple[str, ...] | None = None, device: str = "auto", data: str | Path | None = None
            ) -> pd.DataFrame:
    """Predict with every fold of ``run``: the competition's test set (writes test_predictions.csv and the validated
    submission.csv, returned as a DataFrame) or, with ``images``, every image below that folder (ids, labels and
    class probabilities, also written to the run folder or ``out``).

    With ``data``: the test set of that competition folder (a Kaggle hidden test set), predicted by a run or an
    ensemble folder; only ``out`` (default ``submission.csv``) is written, validated against the folder's sample,
    so the run and data folders may be read-only. Returns the submission."""
    if data is not None:
        if images is not None:
            raise PodiumError("Give --data (a competition folder) or --images (a folder of images), not both.")
        from podium.multirun.predict import predict_data

        path = predict_data(run.path if isinstance(run, Run) else run, data, out or "submission.csv",
                            tuple(tta) if tta else None, device)
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.attrs["path"] = str(path)  # where it was written, for the command line to say
        return table
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

    paths = [m.path if isinstance(m, Run) else m for m in members]
    return run_ensemble(paths, top, data, where, blend, root, name, device)


def merge(*runs: str | Path | Run, out: str | Path, data: str | Path | None = None) -> Run:
    """Combine runs of one config that trained different ``cv.train_folds`` (separate machines or notebook sessions)
    into the new run folder ``out``: config, folds.csv and data checked, then OOF, decisions, metrics and the
    submission computed exactly as for a run trained in one go. ``data``: the competition folder, when it is not at
    the runs' path here. Returns the merged Run."""
    from podium.multirun.merge import merge as run_merge

    return run_merge([r.path if isinstance(r, Run) else r for r in runs], out, data)


def pack(*folders: str | Path | Run, out: str | Path, base: str | Path | None = None, fp16: bool = False,
         dataset: str = "podium-pack", python_version: str = "", platform: str = "") -> dict[str, Any]:
    """One folder to upload as a Kaggle dataset for an offline inference notebook: podium's wheel and the wheels of
    the dependencies the ``base`` environment lacks (a requirements or freeze file; default: Kaggle's image),
    the runs and ensembles slimmed to their inference checkpoints (``fp16``: half-precision weights), predict.py
    and the notebook cell. ``python_version``/``platform``: the notebook's (e.g. ``3.11``, ``manylinux2014_x86_64``)
    when this machine differs. Returns what the pack holds (also ``out/pack.json``)."""
    from podium.multirun.pack import pack as run_pack

    return run_pack([f.path if isinstance(f, Run) else f for f in folders], out, base, fp16, dataset, python_version,
                    platform)


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
