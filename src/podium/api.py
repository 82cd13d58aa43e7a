"""The Python API, for notebooks and scripts. Every ``podium`` subcommand calls exactly one function of this module
(``podium.cli`` only parses arguments and prints what these return), so the notebook and the shell do the same.

    import podium
    run = podium.train("data/", model={"name": "resnet18", "img_size": 128}, train={"epochs": 3})
    run.metrics["cv_score"], run.oof.head(), run.submission_path
    podium.predict(run, images="more_images/")      # a DataFrame of labels and probabilities
    run = podium.load("runs/data-resnet18-20261123-101500")
    podium.report(run)                               # (re)writes run.report_path, report.html

Every function that takes a config (``train``, ``inspect``, ``preview``, ``sweep``, ``search``, ``probe``) checks
it with ``podium.validation.validate`` before anything is written. Every function that reads saved run folders
(``_reads_saved_runs``) runs no user metric those folders name unless its ``metric`` argument names it again.
"""

from __future__ import annotations

import functools
import inspect as signatures
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from podium.config import PodiumConfig, from_dict, load_config, to_dict
from podium.config import merge as merge_overrides
from podium.core.errors import PodiumError

if TYPE_CHECKING:  # imported where used: podium.runs and podium.validation import torch, which light paths avoid
    from podium.inference.forecast import Forecast
    from podium.runs.run import Run

F = TypeVar("F", bound=Callable[..., Any])


def _reads_saved_runs(fn: F) -> F:
    """A function that reads saved run folders, which someone may have handed over: a user metric
    (``cv.metric=module:function``) named there runs only when the function's ``metric`` argument, what the user
    typed, names it too; otherwise it is refused in one line (``podium.tasks.metrics.trusted_metrics``)."""
    signature = signatures.signature(fn)

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        from podium.tasks.metrics import trusted_metrics

        with trusted_metrics(signature.bind(*args, **kwargs).arguments.get("metric") or ""):
            return fn(*args, **kwargs)
    return guarded  # type: ignore[return-value]


def make_config(config: str | Path | PodiumConfig | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
                **sections: dict[str, Any]) -> PodiumConfig:
    """A checked config from a YAML path, a PodiumConfig or a nested dict, then ``sections`` (e.g.
    ``train={"epochs": 3}``), then dotted ``overrides`` (e.g. ``["train.epochs=3"]``); registry names and relations
    between keys are validated too."""
    from podium.validation import validate

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
    return validate(merge_overrides(base, list(overrides)))


def train(data_dir: str | Path, config: str | Path | PodiumConfig | dict | None = None,
          overrides: list[str] | tuple[str, ...] = (), ray: str | bool | None = None, cpus_per_task: float = 1.0,
          gpus_per_task: float | None = None, retries: int = 2, **sections: dict[str, Any]) -> Run:
    """Train K folds on ``data_dir``: OOF metrics and decisions, test predictions and a validated submission.

    ``config``: a YAML file, a PodiumConfig or a dict; ``sections``: ``model={...}``, ``train={...}``, ...;
    ``overrides``: dotted ``section.key=value`` strings. ``ray``: each fold a Ray task (``True``/``"local"``: Ray on
    this machine; ``"HOST:6379"``: that cluster), holding ``cpus_per_task`` cores and ``gpus_per_task`` GPUs
    (default: one GPU when the cluster has GPUs), a task whose worker died retried ``retries`` times; the folds are
    merged as ``merge`` does. Returns the finished Run.
    """
    from podium.multirun.fanout import ray_options

    options = ray_options(ray, cpus_per_task, gpus_per_task, retries)  # Ray's options checked before the data
    cfg = make_config(config, overrides, **sections)
    if options is not None:
        from podium.multirun.fanout import train_folds

        return train_folds(data_dir, cfg, options)
    from podium.pipeline import train as run_pipeline

    return run_pipeline(data_dir, cfg)


@_reads_saved_runs
def resume(run: str | Path | Run, metric: str = "") -> Run:
    """Continue an interrupted run where it stopped; returns the finished Run. ``metric``: the run's user metric
    (``module:function``), named again to trust it."""
    from podium.pipeline import train as run_pipeline

    return run_pipeline(None, resume=run)


@_reads_saved_runs
def predict(run: str | Path | Run | None = None, images: str | Path | None = None, out: str | Path | None = None,
            tta: list[str] | tuple[str, ...] | None = None, device: str = "auto", data: str | Path | None = None,
            onnx: str | Path | None = None, metric: str = "", folds: list[int] | tuple[int, ...] | None = None,
            members: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Predict with every fold of ``run``: the competition's test set (writes test_predictions.csv and the validated
    submission.csv, returned as a DataFrame) or, with ``images``, every image below that folder (ids, labels and
    class probabilities, also written to the run folder or ``out``).

    With ``data``: the test set of that competition folder (a Kaggle hidden test set), predicted by a run or an
    ensemble folder; only ``out`` (default ``submission.csv``) is written, validated against the folder's sample,
    so the run and data folders may be read-only. Returns the submission.

    With ``onnx`` (a file or bundle folder from ``export``) and ``images``: onnxruntime labels the images, without
    torch. ``folds`` (of every member) and ``members`` (of an ensemble) predict with a subset of the models, as
    ``estimate_inference``'s budget chose (``BudgetFit.choice.predict_kwargs()``).
    The returned table's ``attrs["path"]`` is the file written."""
    from podium.inference.predict import predict_saved

    path = predict_saved(getattr(run, "path", run), images, out, tuple(tta) if tta else None, device, data, onnx,
                         tuple(folds) if folds is not None else None, tuple(members) if members is not None else None)
    # a submission's columns are text as written (ids such as 007); a probability table's are numbers
    table = pd.read_csv(path, dtype=str if images is None else None, keep_default_na=False)
    table.attrs["path"] = str(path)  # where it was written, for the command line to say
    return table


@_reads_saved_runs
def estimate_inference(run: str | Path | Run, n_images: int, tta: list[str] | tuple[str, ...] | None = None,
                       folds: list[int] | tuple[int, ...] | None = None,
                       members: list[str] | tuple[str, ...] | None = None, metric: str = "") -> Forecast:
    """Forecast how long ``podium predict --data`` takes on ``n_images`` fresh images with a run or ensemble folder
    (all its models as trained, or the ``tta`` views, ``folds`` and ``members`` given), from the throughput its runs
    measured: per member folds, views, images/s and seconds, the startup (model loading), the decode and the total
    (``podium.inference.forecast.Forecast``). Nothing is predicted."""
    from podium.inference.forecast import InferenceChoice, forecast

    choice = InferenceChoice(tuple(members) if members is not None else None,
                             tuple(folds) if folds is not None else None, tuple(tta) if tta else None)
    return forecast(getattr(run, "path", run), n_images, choice)


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


@_reads_saved_runs
def ensemble(*members: str | Path | Run, top: int = 0, data: str | Path | None = None,
             where: list[str] | tuple[str, ...] = (), blend: str = "weights", root: str | Path = "runs",
             name: str = "", device: str = "auto", metric: str = "") -> Run:
    """Blend finished runs of one data folder into an ensemble folder (OOF, metrics, decisions, validated submission).

    ``members``: run folders (or Runs), or ``top=K`` best runs of the experiment log in ``root`` (``data``: of that
    data folder; ``where``: ``["model.img_size=160"]``). ``blend``: mean, logit_mean, rank_mean or weights (fitted on
    the OOF predictions; ``metrics["cv_score"]`` is the honest, cross-fitted score). Returns the ensemble folder.
    """
    from podium.multirun.ensemble import ensemble as run_ensemble

    paths = [getattr(m, "path", m) for m in members]
    return run_ensemble(paths, top, data, where, blend, root, name, device)


@_reads_saved_runs
def merge(*runs: str | Path | Run, out: str | Path, data: str | Path | None = None, metric: str = "") -> Run:
    """Combine runs of one config that trained different ``cv.train_folds`` (separate machines or notebook sessions)
    into the new run folder ``out``: config, folds.csv and data checked, then OOF, decisions, metrics and the
    submission computed exactly as for a run trained in one go. ``data``: the competition folder, when it is not at
    the runs' path here. Returns the merged Run."""
    from podium.multirun.merge import merge as run_merge

    return run_merge([getattr(r, "path", r) for r in runs], out, data)


@_reads_saved_runs
def pack(*folders: str | Path | Run, out: str | Path, base: str | Path | None = None, fp16: bool = False,
         dataset: str = "podium-pack", python_version: str = "", platform: str = "") -> dict[str, Any]:
    """One folder to upload as a Kaggle dataset for an offline inference notebook: podium's wheel and the wheels of
    the dependencies the ``base`` environment lacks (a requirements or freeze file; default: Kaggle's image),
    the runs and ensembles slimmed to their inference checkpoints (``fp16``: half-precision weights), predict.py
    and the notebook cell. ``python_version``/``platform``: the notebook's (e.g. ``3.11``, ``manylinux2014_x86_64``)
    when this machine differs. Returns what the pack holds (also ``out/pack.json``)."""
    from podium.deploy.pack import pack as run_pack

    return run_pack([getattr(f, "path", f) for f in folders], out, base, fp16, dataset, python_version,
                    platform)


def sweep(data_dir: str | Path, grid: list[str] | tuple[str, ...],
          config: str | Path | PodiumConfig | dict | None = None, overrides: list[str] | tuple[str, ...] = (),
          name: str = "", jobs: int = 1, storage: str = "", retries: int = 2, ray: str | bool | None = None,
          cpus_per_task: float = 1.0, gpus_per_task: float | None = None, **sections: dict[str, Any]) -> pd.DataFrame:
    """Train every combination of the ``grid`` axes (``["model.name=a,b", "model.img_size=128,160"]``) on top of the
    config, each an ordinary run; finished combinations of an earlier call are skipped and an interrupted one
    resumes. ``jobs`` > 1 runs combinations in parallel processes sharing the CPU cores. ``storage``: an Optuna RDB
    URL that several processes or machines share the grid through (each combination trained once, a failed one
    retried up to ``retries`` times; the table is read from the storage). ``ray``: each combination a Ray task
    (``True``/``"local"``, or a cluster's ``"HOST:6379"``; ``cpus_per_task``, ``gpus_per_task`` as in ``train``; a
    task whose worker died retried ``retries`` times). Returns the sweep table (also
    ``<run.root>/sweeps/<name>/sweep.csv``)."""
    from podium.multirun.fanout import ray_options
    from podium.multirun.shared_sweep import run_shared_sweep
    from podium.multirun.sweep import plan_sweep, run_sweep

    options = ray_options(ray, cpus_per_task, gpus_per_task, retries)
    if storage and options is not None:
        raise PodiumError("Give --storage (machines sharing a grid through a database) or --ray (a Ray cluster), "
                          "not both.")
    if storage:
        from podium.multirun.search import check_storage_url

        check_storage_url(storage)  # before the data is checked
    plan = plan_sweep(data_dir, make_config(config, overrides, **sections), grid, name, jobs)
    table = run_shared_sweep(plan, storage, retries=retries) if storage else run_sweep(plan, ray=options)
    # for the command line's table and the path it prints
    table.attrs.update(axes=list(plan.axes), folder=str(plan.folder.path), path=str(plan.folder.table_path))
    return table


def search(data_dir: str | Path, space: str | Path, trials: int, config: str | Path | PodiumConfig | dict | None = None,
           overrides: list[str] | tuple[str, ...] = (), storage: str = "", study: str = "", jobs: int = 1,
           ray: str | bool | None = None, cpus_per_task: float = 1.0, gpus_per_task: float | None = None,
           retries: int = 2, **sections: dict[str, Any]) -> dict[str, Any]:
    """Optuna search over the YAML ``space`` (``section.key: {type, low, high, log, choices}``) on top of the config,
    each trial a run, until the study holds ``trials`` finished trials; ``storage``: an Optuna RDB URL (default:
    SQLite in the runs root, shareable by several processes), ``study``: its name (continued when it exists);
    ``jobs`` > 1 runs trials in that many processes sharing the CPU cores. Returns the best trial: number, value,
    params, run_dir, metric, and ``command``: the ``podium train`` line that trains it again. ``ray``: the study
    stays in this process (ask and tell) and each trial's run is a Ray task, not pruned (options as in ``train``)."""
    from podium.multirun.fanout import ray_options
    from podium.multirun.search import search as run_search
    from podium.multirun.search import train_command

    options = ray_options(ray, cpus_per_task, gpus_per_task, retries)
    best = run_search(data_dir, make_config(config, overrides, **sections), space, trials, storage, study, jobs,
                      options)
    cfg_path = config if isinstance(config, (str, Path)) else None
    return {**best, "command": train_command(data_dir, cfg_path, overrides, best["params"])}


def auto(data_dir: str | Path, budget: str | float, config: str | Path | PodiumConfig | dict | None = None,
         overrides: list[str] | tuple[str, ...] = (), dry_run: bool = False, ladder: str = "",
         inference_budget: str | float | None = None, hidden_images: int | None = None,
         ray: str | bool | None = None, cpus_per_task: float = 1.0, gpus_per_task: float | None = None,
         retries: int = 2, **sections: dict[str, Any]) -> Run | dict[str, Any]:
    """The best submission ``budget`` buys (seconds, or ``90s``, ``15m``, ``2h``, ``1h30m``) on this machine: probe
    the ladder's candidates, plan runs, sizes, epochs and folds (printed, and saved as plan.json in the auto folder),
    train them re-planning after every epoch, blend them when the honest CV says it helps, pseudo-label when time
    remains. Returns the final run or ensemble folder (a validated submission.csv when the data has a test set), or
    with ``dry_run`` the plan only. ``ladder``: a registered ladder (``LADDERS``) instead of the device's.
    ``hidden_images``: the hidden test set's size (default: the public test set's), whose prediction time is
    forecast in the summary; ``inference_budget`` (``9h``): TTA views, folds, then members are dropped until that
    forecast fits, and the summary names the ``podium predict`` command for the notebook. ``ray`` (as ``train``'s,
    with ``cpus_per_task``, ``gpus_per_task``, ``retries``): the probe and each planned run a Ray task, one at a
    time, on the node that trains; the plan and its re-planning after every epoch stay here."""
    from podium.multirun.auto.clock import MonotonicClock, parse_budget
    from podium.multirun.fanout import ray_options

    clock = MonotonicClock()
    start = clock.now()  # the budget starts here: loading torch and the rest of podium counts too
    seconds = parse_budget(budget)  # a bad budget is one line before the config or the data is read
    options = ray_options(ray, cpus_per_task, gpus_per_task, retries)
    from podium.multirun.auto.inference import InferenceLimit
    from podium.multirun.auto.session import auto as run_auto

    limit = InferenceLimit.parse(inference_budget, hidden_images)
    if options is not None:
        from podium.multirun.auto.remote import auto_on_ray

        return auto_on_ray(data_dir, seconds, make_config(config, overrides, **sections), options, dry_run, ladder,
                           clock, start, limit)
    return run_auto(data_dir, seconds, make_config(config, overrides, **sections), dry_run, ladder, clock,
                    start=start, inference=limit)


@_reads_saved_runs
def report(run: str | Path | Run, metric: str = "") -> Path:
    """(Re)write the self-contained ``report.html`` of a run or an ensemble folder from the folder alone (no
    retraining); returns its path (``run.report_path``)."""
    from podium.reporting import build_report

    return build_report(run)


@_reads_saved_runs
def suspects(run: str | Path | Run, top: int = 20) -> pd.DataFrame:
    """The training labels the run's own out-of-fold predictions contradict (its suspects.csv): the ``top`` worst
    first (0: all), then the duplicate clusters whose labels disagree; columns id, fold, given, suggested, quality
    (in [0, 1], low = likely wrong) and source. ``attrs``: ``oof_suspects``, ``oof_rows``, ``conflicts``, the ``run``
    folder and ``warning`` (when so many are flagged that the model, not the labels, is the likelier culprit; else
    ''). A folder without suspects.csv is one line saying why."""
    from podium.reporting.suspects import too_many
    from podium.runs.ensemble import open_folder

    folder = run if not isinstance(run, (str, Path)) else open_folder(run, writer=False)
    table = folder.suspects()
    if table is None:
        why = ("finished before podium wrote suspect labels (train it again to get them)" if folder.finished
               else "has not finished (suspects.csv is written at the end of training)")
        raise PodiumError(f"Run {folder.path} has no suspects.csv: it {why}.")
    oof = table["source"] == "oof"
    shown = table.head(top) if top > 0 else table
    rows = len(folder.oof)
    shown.attrs.update(oof_suspects=int(oof.sum()), oof_rows=rows, conflicts=int((~oof).sum()), run=str(folder.path),
                       warning=too_many(int(oof.sum()), rows))
    return shown


def inspect(data_dir: str | Path, config: str | Path | PodiumConfig | dict | None = None,
            overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
            **sections: dict[str, Any]) -> dict[str, Any]:
    """Check ``data_dir`` as ``train`` would (task, counts, sizes, bad files, duplicates, conflicts, test overlap),
    write inspect.json, duplicates.csv and contact_sheet.png to ``out`` (default ``<run.root>/inspect-<name>``) and
    return the summary."""
    from podium.data.inspection import inspect_data

    return inspect_data(data_dir, make_config(config, overrides, **sections), out)


@_reads_saved_runs
def runs(root: str | Path = "runs", data: str | Path | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """The experiment log of ``root``, one leaderboard per (data folder, task), best CV first: a list of
    ``{data_dir, task, metric, rows}``."""
    from podium.runs.board import leaderboard

    return leaderboard(root, data, task)


@_reads_saved_runs
def compare(a: str | Path | Run, b: str | Path | Run) -> dict[str, list[tuple[str, Any, Any]]]:
    """The config keys whose values differ between runs ``a`` and ``b`` (``config``) and their numbers side by side
    (``numbers``), each a list of (key, value in a, value in b)."""
    from podium.runs.board import compare as compare_runs

    return compare_runs(*(getattr(r, "path", r) for r in (a, b)))


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
    from podium.validation import help_text

    return help_text()


@_reads_saved_runs
def export(run: str | Path | Run, out: str | Path | None = None, folds: str = "all", tta: bool = True,
           opset: int = 18, fp16: bool = False, quantize: str = "", layout: str = "nhwc", metric: str = ""
           ) -> dict[str, Any]:
    """Export a run or ensemble folder to one ONNX graph (uint8 images in, podium's probabilities out; default
    ``<folder>/export/model.onnx``) and check it against podium on OOF images; returns the report (``export.json``).
    Raises PodiumError when parity is worse than the precision's tolerance (int8: reported, not enforced).
    ``tta`` (default): the run's TTA views inside the graph, as ``podium predict`` applies them (``tta_views`` in the
    report); ``tta=False``: the plain image, and ``predict_differs`` in the report says by how much. An ensemble whose
    members prepare images differently is written as a bundle folder (``<folder>/export/bundle``: one graph per
    preprocessing and bundle.json), checked for parity as a whole; ``report["bundle"]`` is then True."""
    from podium.deploy.writer import export_model

    return export_model(getattr(run, "path", run), out, folds, tta, opset, fp16, quantize, layout)


def predict_onnx(onnx: str | Path, images: str | Path, out: str | Path | None = None) -> Path:
    """Label every image below ``images`` with an exported model through onnxruntime, without torch; returns the
    CSV (ids, labels, class probabilities)."""
    from podium.inference.predict import predict_saved

    return predict_saved(images=images, out=out, onnx=onnx)


@_reads_saved_runs
def serve(target: str | Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_images: int = 16, max_mb: float = 20.0, max_mpx: float = 40.0) -> None:
    """Serve an ONNX file or bundle folder (or a run / ensemble folder, exported first when it has no export) over HTTP:
    an upload page at /, POST /predict, /health, /ready, /info, /metrics (Prometheus). A token is required on any
    address but localhost; requests are bounded to ``max_images`` images, ``max_mb`` MB and ``max_mpx`` megapixels
    per image."""
    from podium.serving.app import Limits
    from podium.serving.server import serve as run_server

    run_server(target, host, port, token, Limits(int(max_mb * 1024 * 1024), max_images, int(max_mpx * 1e6)))
