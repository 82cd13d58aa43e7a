"""Experiment trackers (``run.trackers``): the training loss and learning rate every ``run.log_every`` optimiser
updates, and each epoch's validation metrics, sent to TensorBoard and/or MLflow through Accelerate's tracker classes.

Each tracker is a registered ``TrackerKind`` (``TRACKERS``) that owns what it needs installed, where it stores its
data by default (inside the runs root) and how it builds Accelerate's tracker for one fold; nothing else names one.

One tracker run per fold (``<run folder>/fold{k}`` in TensorBoard, ``<run folder>-fold{k}`` in MLflow, tagged with
the podium run and fold), rather than one run with fold-prefixed keys: every fold is a model trained from scratch on
its own step axis, and both tools compare *runs*. TensorBoard overlays the runs that share a tag, so ``train/loss``
is one chart holding the K folds of a run and the same fold of other runs (``--logdir <runs root>/tensorboard``);
MLflow's run table, charts and parallel coordinates compare runs, grouped here by data folder (the experiment) and
filtered by the ``podium.run`` / ``podium.fold`` tags. Fold-prefixed keys would give K charts per metric that never
overlay with another podium run's.

Why podium builds Accelerate's ``TensorBoardTracker`` / ``MLflowTracker`` (``GeneralTracker``s, the objects that
``Accelerator(log_with=...)`` takes) itself and calls their ``start`` / ``store_init_configuration`` / ``log`` /
``finish`` instead of ``accelerator.init_trackers`` / ``log`` / ``end_training``: an Accelerator's trackers live as
long as the Accelerator (one per run, on state that Accelerate keeps per process), ``init_trackers`` appends to
``accelerator.trackers`` (a second call for the next fold would send every value to the earlier folds' runs too),
and ``end_training`` also destroys the process group that the rest of a distributed run still needs. The tracker
methods run on the main process only (Accelerate's ``on_main_process``, as for ``accelerator.log``); podium opens
no tracker at all on the other processes.

Resume: the step is the optimiser update's index in the fold, restored with the schedule from ``last.pt``, so a
resumed fold continues its curves. TensorBoard hides what the interrupted process logged after the restored step
(``SummaryWriter(purge_step=...)``); MLflow continues the fold's run (found by its tags), and a fold that restarts
from its first epoch replaces it. A tracker that fails (a server that stops answering) is a warning line and the
run goes on without it: the run folder holds every number too (``fold{k}/log.csv``, ``lr.csv``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker
from accelerate.utils import is_mlflow_available, is_tensorboard_available

from podium.config import PodiumConfig, RunConfig, dump_yaml, to_dict
from podium.core.errors import PodiumError, install_hint
from podium.core.registry import Registry

if TYPE_CHECKING:  # the config check imports this module: it stays light
    from accelerate import Accelerator

    from podium.core.console import Reporter
    from podium.runs.run import Run



@dataclass(frozen=True)
class FoldContext:
    """What a tracker needs to open one fold's run: the config, the run folder, the fold and ``start_step``, the
    optimiser updates the fold has already done (0: a fresh fold; more: a resumed one)."""

    cfg: PodiumConfig
    run: Run
    fold: int
    start_step: int


@dataclass(frozen=True)
class TrackerKind:
    """A registered experiment tracker.

    ``open(ctx)`` builds and starts Accelerate's tracker for one fold (on the main process). ``missing(rc)`` names the
    packages it lacks on this machine for the run config ``rc`` (empty: ready). ``where(rc, root)`` says where it logs
    for the runs root ``root``, and how to look. ``close(tracker, error)`` ends the fold's run; ``error`` is the
    exception that stopped the fold, or None.
    """

    open: Callable[[FoldContext], GeneralTracker]
    missing: Callable[[RunConfig], list[str]]
    where: Callable[[RunConfig, Path], str]
    close: Callable[[GeneralTracker, BaseException | None], None] = lambda tracker, error: tracker.finish()


TRACKERS: Registry[TrackerKind] = Registry("tracker")


def check_trackers(rc: RunConfig) -> None:
    """A one-line PodiumError for the first configured tracker whose packages are not installed here."""
    for name in rc.trackers:
        missing = TRACKERS.get(name).missing(rc)
        if missing:
            raise PodiumError(f"run.trackers={name} needs {', '.join(missing)}, not installed here: "
                              f"{install_hint('trackers')}.")


def describe_trackers(rc: RunConfig, root: Path) -> str:
    """The run's opening line about its trackers (empty when there is none)."""
    return "; ".join(f"{name}: {TRACKERS.get(name).where(rc, root)}" for name in rc.trackers)


def flat_config(cfg: PodiumConfig) -> dict[str, Any]:
    """The config as ``section.key`` -> bool, int, float or str (lists joined by commas), for hyperparameter tables."""
    return {f"{section}.{key}": ",".join(map(str, v)) if isinstance(v, list) else v
            for section, values in to_dict(cfg).items() for key, v in values.items()}


# ---------------------------------------------------------------------------------------------------- one fold


class FoldTrackers:
    """The open trackers of one fold (none on processes other than the main one).

    ``update`` takes every optimiser update and logs ``train/loss`` (the mean since the last point) and ``train/lr``
    every ``every`` updates and at the end of each epoch; ``epoch`` logs an epoch's log row, ``fold`` the finished
    fold's scores.
    """

    def __init__(self, opened: list[tuple[str, TrackerKind, GeneralTracker]], every: int, start_step: int,
                 reporter: Reporter) -> None:
        self.opened, self.every, self.reporter = opened, every, reporter
        self.loss, self.updates, self.lr = 0.0, 0, 0.0
        self.last = max(start_step - 1, 0)  # the latest update's index (a resumed fold: the last one before it)

    def log(self, values: dict[str, Any], step: int) -> None:
        """Send ``values`` at ``step`` to every tracker; one that fails is dropped with a warning line."""
        for entry in list(self.opened):
            try:
                entry[2].log(values, step=step)
            except Exception as e:  # noqa: BLE001 - a tracker never stops a run; its numbers are in the run folder
                self._drop(entry, e)

    def update(self, step: int, loss: float, lr: float) -> None:
        """One optimiser update (``step``: its index in the fold), its mean loss and learning rate."""
        self.loss, self.updates, self.last, self.lr = self.loss + loss, self.updates + 1, step, lr
        if (step + 1) % self.every == 0:
            self._flush()

    def epoch(self, row: dict[str, Any]) -> None:
        """An epoch's log row (``epoch``, ``train_loss``, ``images_per_s``, ``val_loss`` and the task's metrics),
        at the step of its last update."""
        self._flush()
        values = {"epoch": row["epoch"], "epoch/train_loss": row["train_loss"],
                  "epoch/images_per_s": row["images_per_s"], "val/loss": row["val_loss"]}
        skip = {"epoch", "train_loss", "images_per_s", "lr", "train_s", "wall_s", "best", "val_loss"}
        values.update({f"val/{k}": v for k, v in row.items() if k not in skip})
        self.log({k: float(v) for k, v in values.items()}, self.last)

    def fold(self, summary: dict[str, Any]) -> None:
        """The finished fold: its best epoch and score, with and without TTA."""
        self.log({"fold/best_epoch": float(summary["best_epoch"]), "fold/score": float(summary["score"]),
                  "fold/score_tta": float(summary["score_tta"])}, self.last)

    def close(self, error: BaseException | None) -> None:
        """End every tracker's run (``error``: what stopped the fold, or None)."""
        for entry in self.opened:
            try:
                entry[1].close(entry[2], error)
            except Exception as e:  # noqa: BLE001
                self.reporter.warn(f"tracker {entry[0]} did not close: {_line(e)}")
        self.opened = []

    def _flush(self) -> None:
        if self.updates:
            self.log({"train/loss": self.loss / self.updates, "train/lr": self.lr}, self.last)
        self.loss, self.updates = 0.0, 0

    def _drop(self, entry: tuple[str, TrackerKind, GeneralTracker], error: Exception) -> None:
        self.opened.remove(entry)
        self.reporter.warn(f"tracker {entry[0]} stopped logging: {_line(error)}")
        try:  # end its run (MLflow's active run would otherwise be the parent of the next fold's)
            entry[1].close(entry[2], error)
        except Exception:  # noqa: BLE001 - already reported
            pass


@contextmanager
def fold_trackers(cfg: PodiumConfig, run: Run, fold: int, start_step: int, accelerator: Accelerator,
                  reporter: Reporter) -> Iterator[FoldTrackers]:
    """The fold's trackers, closed when the block ends (with the exception that ended it, if any)."""
    opened: list[tuple[str, TrackerKind, GeneralTracker]] = []
    if accelerator.is_main_process:
        for name in cfg.run.trackers:
            kind = TRACKERS.get(name)
            try:
                opened.append((name, kind, kind.open(FoldContext(cfg, run, fold, start_step))))
            except Exception as e:  # noqa: BLE001 - the run goes on without it
                reporter.warn(f"tracker {name} did not start: {_line(e)}")
    trackers = FoldTrackers(opened, cfg.run.log_every, start_step, reporter)
    try:
        yield trackers
    except BaseException as e:
        trackers.close(e)
        raise
    trackers.close(None)


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]


# ------------------------------------------------------------------------------------------------- TensorBoard


def _tensorboard_dir(root: Path) -> Path:
    return root / "tensorboard"


def _open_tensorboard(ctx: FoldContext) -> GeneralTracker:
    # A resumed fold's writer hides (purges) whatever the interrupted process logged at or after the restored step.
    purge = {"purge_step": ctx.start_step} if ctx.start_step else {}
    tracker = TensorBoardTracker(f"{ctx.run.path.name}/fold{ctx.fold}", _tensorboard_dir(ctx.run.runs_root), **purge)
    tracker.start()
    if not ctx.start_step:
        # The config as text (TensorBoard's hparams would add a separate run per call); indented: a Markdown block.
        tracker.log({"config": "    " + dump_yaml(ctx.cfg).replace("\n", "\n    ")}, step=0)
    return tracker


TRACKERS.register("tensorboard")(TrackerKind(
    _open_tensorboard,
    missing=lambda rc: [] if is_tensorboard_available() else ["tensorboard"],
    where=lambda rc, root: f"{_tensorboard_dir(root)} (tensorboard --logdir {_tensorboard_dir(root)})",
))


# ------------------------------------------------------------------------------------------------------ MLflow


def _mlflow_uri(rc: RunConfig, root: Path) -> str:
    """run.mlflow_uri, else the local store in the runs root. A SQLite file: MLflow 3 refuses its old ``mlruns/``
    file store unless told otherwise, and names ``sqlite:///mlflow.db`` as its local default."""
    return rc.mlflow_uri or f"sqlite:///{root / 'mlflow.db'}"


def _quoted(value: str) -> str | None:
    """``value`` as a string literal of MLflow's search syntax (None when it holds both kinds of quote)."""
    return next((f"{q}{value}{q}" for q in ("'", '"') if q not in value), None)


def _open_mlflow(ctx: FoldContext) -> GeneralTracker:
    import mlflow

    rc, root = ctx.cfg.run, ctx.run.runs_root
    mlflow.set_tracking_uri(_mlflow_uri(rc, root))
    experiment = ctx.run.data_dir.name.replace("'", "")  # Accelerate looks the experiment up by name, in quotes
    tags = {"podium.run": ctx.run.path.name, "podium.run_dir": str(ctx.run.path), "podium.fold": str(ctx.fold),
            "podium.data_dir": str(ctx.run.data_dir)}
    previous = _fold_run(mlflow.MlflowClient(), experiment, str(ctx.run.path), ctx.fold)
    if previous is not None and not ctx.start_step:  # the fold restarts from its first epoch: a fresh run
        mlflow.MlflowClient().delete_run(previous)
        previous = None
    tracker = MLflowTracker(
        experiment_name=experiment, run_id=previous, tags=tags, run_name=f"{ctx.run.path.name}-fold{ctx.fold}",
        # artifacts beside the local store (MLflow's default would be ./mlruns in the current directory)
        logging_dir=None if rc.mlflow_uri else (root / "mlruns").as_uri(),
        nested_run=mlflow.active_run() is not None)  # inside a notebook's own run: nested under it
    tracker.start()
    if previous is None:
        tracker.store_init_configuration(flat_config(ctx.cfg))
    return tracker


def _fold_run(client: Any, experiment: str, run_dir: str, fold: int) -> str | None:
    """The id of the MLflow run that fold ``fold`` of the run folder ``run_dir`` logged to before, if any."""
    found = client.get_experiment_by_name(experiment)
    where = _quoted(run_dir)
    if found is None or where is None:
        return None
    runs = client.search_runs([found.experiment_id], max_results=1,
                              filter_string=f"tags.`podium.run_dir` = {where} and tags.`podium.fold` = '{fold}'")
    return runs[0].info.run_id if runs else None


def _close_mlflow(tracker: GeneralTracker, error: BaseException | None) -> None:
    import mlflow

    # Accelerate's finish() ends the run FINISHED; an interrupted fold (resumable) is KILLED, a crashed one FAILED.
    mlflow.end_run("FINISHED" if error is None else "FAILED" if isinstance(error, Exception) else "KILLED")


def _mlflow_missing(rc: RunConfig) -> list[str]:
    missing = [] if is_mlflow_available() else ["mlflow"]
    if not rc.mlflow_uri:  # the local SQLite store (mlflow-skinny leaves these out)
        missing += [name for name in ("sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    return missing


def _mlflow_where(rc: RunConfig, root: Path) -> str:
    uri = _mlflow_uri(rc, root)
    return uri if rc.mlflow_uri else f"{uri} (mlflow ui --backend-store-uri {uri})"


TRACKERS.register("mlflow")(TrackerKind(_open_mlflow, _mlflow_missing, _mlflow_where, _close_mlflow))
