"""The Python API, for notebooks and scripts. Every ``podium`` subcommand calls exactly one function of this module
(``podium.cli`` only parses arguments and prints what these return), so the notebook and the shell do the same.

    import podium
    run = podium.train("data/", model={"name": "resnet18", "img_size": 128}, train={"epochs": 3})
    run.metrics["cv_score"], run.oof.head(), run.submission_path
    podium.predict(run, images="more_images/")      # a DataFrame of labels and probabilities
    run = podium.load("runs/data-resnet18-20261123-101500")
    podium.report(run)                               # (re)writes run.report_path, report.html

Every function that takes a config (``train``, ``inspect``, ``preview``, ``sweep``, ``search``, ``probe``) checks
it with ``podium.validation.validate`` before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from podium.config import PodiumConfig, from_dict, load_config, merge, to_dict
from podium.core.errors import PodiumError
from podium.runs.run import Run
from podium.validation import help_text, validate


def make_config(config: str | Path | PodiumConfig | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
                **sections: dict[str, Any]) -> PodiumConfig:
    """A checked config from a YAML path, a PodiumConfig or a nested dict, then ``sections`` (e.g.
    ``train={"epochs": 3}``), then dotted ``overrides`` (e.g. ``["train.epochs=3"]``); registry names and relations
    between keys are validated too."""
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
    return validate(merge(base, list(overrides)))


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
    table = pd.read_csv(path, dtype=str if images is None else None, keep_default_na=False)
    table.attrs["path"] = str(path)  # where it was written, for the command line to say
    return table


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


def sweep(data_dir: str | Path, grid: list[str] | tuple[str, ...],
          config: str | Path | PodiumConfig | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
          name: str = "", jobs: int = 1, storage: str = "", retries: int = 1,
          **sections: dict[str, Any]) -> pd.DataFrame:
    """Train every combination of the ``grid`` axes (``["model.name=a,b", "model.img_size=128,160"]``) on top of the
    config, each an ordinary run; finished combinations of an earlier call are skipped and an interrupted one
    resumes. ``jobs`` > 1 runs combinations in parallel processes sharing the CPU cores. ``storage``: an Optuna RDB
    URL that several processes or machines share the grid through (each combination trained once, a failed one
    retried up to ``retries`` times; the table is read from the storage). Returns the sweep table (also
    ``<run.root>/sweeps/<name>/sweep.csv``)."""
    from podium.multirun.shared_sweep import run_shared_sweep
    from podium.multirun.sweep import plan_sweep, run_sweep

    if storage:
        from podium.multirun.search import check_storage_url

        check_storage_url(storage)  # before the data is checked
    plan = plan_sweep(data_dir, make_config(config, overrides, **sections), grid, name, jobs)
    table = run_shared_sweep(plan, storage, retries=retries) if storage else run_sweep(plan)
    table.attrs.update(axes=list(plan.axes), folder=str(plan.folder))  # for the command line's table
    return table


def search(data_dir: str | Path, space: str | Path, trials: int, config: str | Path | PodiumConfig | dict | None = None,
           overrides: list[str] | tuple[str, ...] = (), storage: str = "", study: str = "", jobs: int = 1,
           **sections: dict[str, Any]) -> dict[str, Any]:
    """Optuna search over the YAML ``space`` (``section.key: {type, low, high, log, choices}``) on top of the config,
    each trial a run, until the study holds ``trials`` finished trials; ``storage``: an Optuna RDB URL (default:
    SQLite in the runs root, shareable by several processes), ``study``: its name (continued when it exists);
    ``jobs`` > 1 runs trials in that many processes sharing the CPU cores. Returns the best trial: number, value,
    params, run_dir, metric, and ``command``: the ``podium train`` line that trains it again."""
    from podium.multirun.search import search as run_search
    from podium.multirun.search import train_command

    best = run_search(data_dir, make_config(config, overrides, **sections), space, trials, storage, study, jobs)
    cfg_path = config if isinstance(config, (str, Path)) else None
    return {**best, "command": train_command(data_dir, cfg_path, overrides, best["params"])}


def report(run: str | Path | Run) -> Path:
    """(Re)write the self-contained ``report.html`` of a run or an ensemble folder from the folder alone (no
    retraining); returns its path (``run.report_path``)."""
    from podium.reporting import build_report

    return build_report(run)


def inspect(data_dir: str | Path, config: str | Path | PodiumConfig | dict | None = None,
            overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
            **sections: dict[str, Any]) -> dict[str, Any]:
    """Check ``data_dir`` as ``train`` would (task, counts, sizes, bad files, duplicates, conflicts, test overlap),
    write inspect.json, duplicates.csv and contact_sheet.png to ``out`` (default ``<run.root>/inspect-<name>``) and
    return the summary."""
    from podium.data.inspection import inspect_data

    return inspect_data(data_dir, make_config(config, overrides, **sections), out)


def runs(root: str | Path = "runs", data: str | Path | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """The experiment log of ``root``, one leaderboard per (data folder, task), best CV first: a list of
    ``{data_dir, task, metric, rows}``."""
    from podium.runs.board import leaderboard

    return leaderboard(root, data, task)


def compare(a: str | Path | Run, b: str | Path | Run) -> dict[str, list[tuple[str, Any, Any]]]:
    """The config keys whose values differ between runs ``a`` and ``b`` (``config``) and their numbers side by side
    (``numbers``), each a list of (key, value in a, value in b)."""
    from podium.runs.board import compare as compare_runs

    return compare_runs(*(r.path if isinstance(r, Run) else r for r in (a, b)))


def models(pattern: str = "", offline: bool = False) -> list[dict[str, Any]]:
    """timm architectures matching ``pattern`` (``*efficientnet*``; empty: all), each with where
    ``model.pretrained=auto`` would get its weights here (``source``), input size, mean and std; ``offline``: only
    those with weights on this machine."""
    from podium.models.catalog import weight_catalog

    return weight_catalog(pattern, offline)


def probe(model: str = "resnet18", size: int = 0, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The largest training batch of ``model`` at ``size`` px (0: its default) that fits on the CUDA GPU, with the
    batch ``train.batch_size=auto`` would use (a ``ProbeResult``; ``batch_size`` is None without a GPU, with the
    reason)."""
    from podium.engine.probe import probe as run_probe

    cfg = make_config(None, [f"model.name={model}", f"model.img_size={size}", *overrides])
    return run_probe(cfg.model, cfg.train)


def demo(workdir: str | Path = "podium-demo", overrides: list[str] | tuple[str, ...] = ()) -> Run:
    """Build the digits demo competition under ``workdir``, train 3 folds on it and write its submission; returns the
    finished Run (in ``workdir/runs``)."""
    from podium.demo import run_demo

    return run_demo(workdir, tuple(overrides))


def config_help() -> str:
    """Every config key with its default, help text, choices (from the registries) and range."""
    return help_text()
