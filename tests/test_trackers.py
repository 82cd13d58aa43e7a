"""run.trackers: TensorBoard and MLflow through Accelerate's tracker classes, one tracker run per fold, with resume.

The tracker packages are in the ``test`` extra (CI installs them); without them these tests skip.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import podium.engine.trackers as trackers
from podium.config import PodiumConfig, merge
from podium.core.errors import Interrupted, PodiumError, install_hint
from podium.pipeline import train
from podium.runs.run import Run
from podium.validation import help_text, validate


def _cfg(tiny: tuple[str, ...], *extra: str) -> PodiumConfig:
    return merge(PodiumConfig(), [*tiny, "train.batch_size=4", "run.log_every=1", *extra])  # 6 updates an epoch


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of a TensorBoard log folder as (step, value) pairs, as TensorBoard shows them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_runs(root: Path, experiment: str) -> dict:
    """The MLflow runs of ``experiment`` in the local store of the runs root ``root``, by run name."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return {r.info.run_name: (r, {k: client.get_metric_history(r.info.run_id, k) for k in r.data.metrics})
            for r in runs}


def test_tensorboard_logs_steps_and_epochs_per_fold(single_dir: Path, tiny: tuple[str, ...]) -> None:
    pytest.importorskip("tensorboard")
    run = train(single_dir, _cfg(tiny, "train.epochs=2", "run.trackers=[tensorboard]"))
    metric = run.metrics["metric"]
    assert (run.runs_root / "tensorboard").is_dir() and "trackers: tensorboard:" in run.log_path.read_text()
    for fold in (0, 1):
        series = _scalars(run.runs_root / "tensorboard" / run.path.name / f"fold{fold}")
        lr = run.lr_log(fold)  # one row per optimiser update: the same steps, the same learning rates
        assert [s for s, _ in series["train/lr"]] == lr["step"].tolist()
        assert [v for _, v in series["train/lr"]] == pytest.approx(lr["lr"].tolist(), rel=1e-6)
        assert [s for s, _ in series["train/loss"]] == lr["step"].tolist()
        log = run.fold_log(fold)
        last_steps = lr.groupby("epoch")["step"].max().tolist()  # epoch rows sit at their epoch's last update
        assert [s for s, _ in series[f"val/{metric}"]] == last_steps
        assert [v for _, v in series[f"val/{metric}"]] == pytest.approx(log[metric].tolist(), rel=1e-6)
        assert [v for _, v in series["epoch/train_loss"]] == pytest.approx(log["train_loss"].tolist(), rel=1e-6)
        assert [v for _, v in series["val/loss"]] == pytest.approx(log["val_loss"].tolist(), rel=1e-6)
        assert series["fold/score"][0][1] == pytest.approx(run.fold_summary(fold)["score"], rel=1e-6)


def test_mlflow_logs_each_fold_to_the_local_store(single_dir: Path, tiny: tuple[str, ...]) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    run = train(single_dir, _cfg(tiny, "run.trackers=[mlflow]", "run.log_every=2"))
    runs = _mlflow_runs(run.runs_root, single_dir.name)  # one experiment per data folder, one run per fold
    assert sorted(runs) == [f"{run.path.name}-fold0", f"{run.path.name}-fold1"]
    metric = run.metrics["metric"]
    for fold in (0, 1):
        info, history = runs[f"{run.path.name}-fold{fold}"]
        assert info.info.status == "FINISHED"
        assert info.data.tags["podium.fold"] == str(fold) and info.data.tags["podium.run_dir"] == str(run.path)
        assert info.data.params["model.name"] == "test_resnet" and info.data.params["run.log_every"] == "2"
        steps = run.lr_log(fold)["step"].tolist()  # every second update, and the epoch's last one
        assert [m.step for m in history["train/loss"]] == [s for s in steps if s % 2 == 1 or s == steps[-1]]
        assert [m.value for m in history[f"val/{metric}"]] == pytest.approx(run.fold_log(fold)[metric].tolist())
        assert history["fold/score_tta"][0].value == pytest.approx(run.fold_summary(fold)["score_tta"])


def test_resumed_fold_continues_its_tracker_runs(single_dir: Path, tiny: tuple[str, ...],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    import podium.engine.fold as fold_module

    real, calls = fold_module.train_one_epoch, []

    def interrupted(*args, on_update=None, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # fold 1, epoch 2: Ctrl-C right after its first optimiser update was logged
            def stop(step: int, loss: float, lr: float) -> None:
                on_update(step, loss, lr)
                raise KeyboardInterrupt

            return real(*args, on_update=stop, **kwargs)
        return real(*args, on_update=on_update, **kwargs)

    monkeypatch.setattr(fold_module, "train_one_epoch", interrupted)
    cfg = _cfg(tiny, "train.epochs=2", "run.name=tracked", "run.trackers=[tensorboard,mlflow]")
    with pytest.raises(Interrupted):
        train(single_dir, cfg)
    (run_dir,) = Path(cfg.run.root).glob("tracked-*")
    root = run_dir.parent
    assert _mlflow_runs(root, single_dir.name)[f"{run_dir.name}-fold1"][0].info.status == "KILLED"
    before = _scalars(root / "tensorboard" / run_dir.name / "fold1")["train/loss"]
    assert [s for s, _ in before] == list(range(7))  # epoch 1's six updates and epoch 2's first

    monkeypatch.setattr(fold_module, "train_one_epoch", real)
    run = train(None, resume=run_dir)
    steps = run.lr_log(1)["step"].tolist()
    series = _scalars(root / "tensorboard" / run_dir.name / "fold1")  # the interrupted update's point is purged
    assert [s for s, _ in series["train/loss"]] == [s for s, _ in series["train/lr"]] == steps
    assert len(series[f"val/{run.metrics['metric']}"]) == 2
    runs = _mlflow_runs(root, single_dir.name)
    assert sorted(runs) == [f"{run_dir.name}-fold0", f"{run_dir.name}-fold1"]  # the same run, continued
    info, history = runs[f"{run_dir.name}-fold1"]
    assert info.info.status == "FINISHED" and len(history[f"val/{run.metrics['metric']}"]) == 2
    assert sorted({m.step for m in history["train/lr"]}) == steps


def test_unknown_tracker_is_one_line_with_did_you_mean(single_dir: Path, tiny: tuple[str, ...], cli,
                                                       tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match=r"run.trackers\[0\]: unknown tracker 'tensorbord'.*Did you mean "
                                          r"'tensorboard'\?"):
        validate(merge(PodiumConfig(), ["run.trackers=tensorbord"]))
    code, err = cli("train", str(single_dir), *tiny, "run.trackers=[mlflow,tensorbord]")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Did you mean 'tensorboard'?" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name,check", [("tensorboard", "is_tensorboard_available"),
                                        ("mlflow", "is_mlflow_available")])
def test_missing_tracker_package_names_the_pip_command(single_dir: Path, tiny: tuple[str, ...], cli,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       name: str, check: str) -> None:
    monkeypatch.setattr(trackers, check, lambda: False)
    hint = re.escape(install_hint("trackers"))
    with pytest.raises(PodiumError, match=rf"run.trackers={name} needs {name}.*{hint}"):
        validate(merge(PodiumConfig(), [f"run.trackers={name}"]))
    code, err = cli("train", str(single_dir), *tiny, f"run.trackers={name}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and install_hint("trackers") in err, err
    assert not (tmp_path / "runs").exists()


def test_mlflow_local_store_needs_sqlalchemy_but_a_server_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trackers, "is_mlflow_available", lambda: True)
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda n: None if n == "alembic" else real(n))
    with pytest.raises(PodiumError, match="needs alembic"):
        validate(merge(PodiumConfig(), ["run.trackers=mlflow"]))
    cfg = merge(PodiumConfig(), ["run.trackers=mlflow", "run.mlflow_uri=http://mlflow.example:5000"])
    assert trackers.describe_trackers(cfg.run, Path("runs")) == "mlflow: http://mlflow.example:5000"


def test_resume_checks_the_saved_trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "runs" / "old"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run: {trackers: [tensorboard]}\n")
    (run_dir / "run.json").write_text(json.dumps({"data_dir": str(tmp_path)}))
    monkeypatch.setattr(trackers, "is_tensorboard_available", lambda: False)
    with pytest.raises(PodiumError, match=re.escape(install_hint("trackers"))):
        train(None, resume=Run.open(run_dir))


def test_help_lists_the_trackers() -> None:
    text = help_text()
    assert "run.trackers=" in text and "[choices: tensorboard, mlflow]" in text and "run.mlflow_uri=" in text


def test_a_failing_tracker_is_a_warning_and_the_run_goes_on(tmp_path: Path) -> None:
    from accelerate.tracking import GeneralTracker

    from podium.core.console import Reporter

    class Gone(GeneralTracker):
        name, requires_logging_directory, tracker = "gone", False, None

        def log(self, values: dict, step: int | None = None, **kwargs) -> None:
            raise ConnectionError("server went away\nmore detail")

    class Kept(Gone):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, dict]] = []

        def log(self, values: dict, step: int | None = None, **kwargs) -> None:
            self.points.append((step, values))

    kind, kept, closed = trackers.TRACKERS.get("tensorboard"), Kept(), []
    kind = trackers.TrackerKind(kind.open, kind.missing, kind.where, lambda t, e: closed.append((t, e)))
    log = tmp_path / "train.log"
    fold = trackers.FoldTrackers([("gone", kind, Gone()), ("kept", kind, kept)], 2, 4, Reporter(log))
    for step, loss in ((4, 1.0), (5, 3.0), (6, 5.0)):
        fold.update(step, loss, step / 10)
    fold.epoch({"epoch": 2, "train_loss": 3.0, "images_per_s": 9.0, "lr": 0.5, "train_s": 1.0, "accuracy": 0.5,
                "val_loss": 0.7, "best": True})
    fold.close(None)
    assert kept.points == [(5, {"train/loss": 2.0, "train/lr": 0.5}), (6, {"train/loss": 5.0, "train/lr": 0.6}),
                           (6, {"epoch": 2.0, "epoch/train_loss": 3.0, "epoch/images_per_s": 9.0, "val/loss": 0.7,
                                "val/accuracy": 0.5})]
    assert [type(t).__name__ for t, _ in closed] == ["Gone", "Kept"]  # the failed one closed when dropped
    assert isinstance(closed[0][1], ConnectionError) and closed[1][1] is None
    assert "warning: tracker gone stopped logging: ConnectionError: server went away" in log.read_text()


def test_a_tracker_that_cannot_start_is_a_warning(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from podium.core.console import Reporter

    def refuse(ctx: trackers.FoldContext):
        raise ConnectionError(f"no server for fold {ctx.fold}")

    trackers.TRACKERS.register("refusing")(trackers.TrackerKind(refuse, lambda rc: [], lambda rc, root: "nowhere"))
    try:
        cfg = merge(PodiumConfig(), ["run.trackers=refusing"])
        log = tmp_path / "train.log"
        with trackers.fold_trackers(cfg, Run(tmp_path), 3, 0, SimpleNamespace(is_main_process=True),
                                    Reporter(log)) as fold:
            fold.update(0, 1.0, 0.1)
        assert fold.opened == [] and "tracker refusing did not start: ConnectionError: no server for fold 3" in \
            log.read_text()
    finally:
        trackers.TRACKERS.unregister("refusing")
