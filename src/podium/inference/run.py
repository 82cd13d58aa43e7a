"""``predict_run``: predictions of a trained run folder on its competition's test set or on any image folder."""

from __future__ import annotations

from pathlib import Path

from podium.core.errors import PodiumError
from podium.data.folders.files import list_images
from podium.data.folders.ingest import load_competition
from podium.engine.accel import inference_accelerator
from podium.engine.tta import check_views
from podium.inference.checkpoints import fold_table, predict_checkpoints, probability_table, write_test_outputs
from podium.inference.throughput import measure_inference
from podium.runs.checkpoint import Checkpoint
from podium.runs.run import Run


def predict_run(run: str | Path | Run, images: str | Path | None = None, out: str | Path | None = None,
                tta: tuple[str, ...] | None = None, device: str = "auto", folds: tuple[int, ...] | None = None
                ) -> Path:
    """Predict with every fold of ``run`` (or the ``folds`` named; TTA, fold average).

    Without ``images``: the competition's test set -> ``test_predictions.csv`` and a validated ``submission.csv``.
    With ``images``: every image below that folder -> a CSV of ids, labels and class probabilities.
    Each fold model's probabilities are kept beside the average (``*_folds.csv``, ``*-folds.csv``): a later run's
    honest pseudo-labels read them. What the prediction took is recorded in run.json (``measure_inference``), the
    throughput ``podium predict --estimate`` forecasts from.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    checkpoints = pick_folds(run.checkpoints(), folds, run.path)
    if tta:
        check_views(tta)
    accelerator = inference_accelerator(device, run.config)
    run = Run(run.path, writer=accelerator.is_main_process)
    if images is not None:
        folder = Path(images).expanduser().resolve()
        ids, paths = list_images(folder)
        pred = predict_checkpoints(checkpoints, ids, paths, accelerator, tta)
        measure_inference(run, pred.timings, paths, checkpoints[0], accelerator.device.type)
        return run.write_predictions(folder.name, probability_table(pred), out, fold_table(pred))
    data_dir = run.data_dir
    if not data_dir.is_dir():
        raise PodiumError(f"The run's data folder {data_dir} is gone; pass --images DIR to predict other images.")
    comp = load_competition(data_dir, run.config.data, check=False)
    if comp.test is None:
        raise PodiumError(f"{data_dir} has no test images (sample_submission.csv, test.csv or a test folder); "
                          "pass --images DIR to predict a folder of images.")
    paths = comp.test["path"].tolist()
    pred = predict_checkpoints(checkpoints, comp.test["id"].tolist(), paths, accelerator, tta)
    measure_inference(run, pred.timings, paths, checkpoints[0], accelerator.device.type)
    sub = write_test_outputs(run, pred, comp.submission)
    return run.copy_submission(out) if out else sub


def pick_folds(checkpoints: list[Checkpoint], folds: tuple[int, ...] | None, where: Path) -> list[Checkpoint]:
    """The checkpoints of ``folds`` (None: all); a fold the folder has not finished is a one-line error."""
    if folds is None:
        return checkpoints
    have = [c.fold for c in checkpoints]
    missing = [f for f in folds if f not in have]
    if missing or not folds:
        raise PodiumError(f"--folds {','.join(map(str, folds))}: {where} has finished folds {have}; name some of "
                          "them.")
    return [c for c in checkpoints if c.fold in folds]
