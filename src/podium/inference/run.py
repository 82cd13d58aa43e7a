"""``predict_run``: predictions of a trained run folder on its competition's test set or on any image folder."""

from __future__ import annotations

from pathlib import Path

from podium.core.errors import PodiumError
from podium.data.folders.files import list_images
from podium.data.folders.ingest import load_competition
from podium.engine.accel import inference_accelerator
from podium.engine.tta import check_views
from podium.inference.checkpoints import fold_table, predict_checkpoints, probability_table, write_test_outputs
from podium.runs.run import Run


def predict_run(run: str | Path | Run, images: str | Path | None = None, out: str | Path | None = None,
                tta: tuple[str, ...] | None = None, device: str = "auto") -> Path:
    """Predict with every fold of ``run`` (TTA, fold average).

    Without ``images``: the competition's test set -> ``test_predictions.csv`` and a validated ``submission.csv``.
    With ``images``: every image below that folder -> a CSV of ids, labels and class probabilities.
    Each fold model's probabilities are kept beside the average (``*_folds.csv``, ``*-folds.csv``): a later run's
    honest pseudo-labels read them.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    checkpoints = run.checkpoints()
    if tta:
        check_views(tta)
    accelerator = inference_accelerator(device, run.config)
    run = Run(run.path, writer=accelerator.is_main_process)
    if images is not None:
        folder = Path(images).expanduser().resolve()
        ids, paths = list_images(folder)
        pred = predict_checkpoints(checkpoints, ids, paths, accelerator, tta)
        return run.write_predictions(folder.name, probability_table(pred), out, fold_table(pred))
    data_dir = run.data_dir
    if not data_dir.is_dir():
        raise PodiumError(f"The run's data folder {data_dir} is gone; pass --images DIR to predict other images.")
    comp = load_competition(data_dir, run.config.data, check=False)
    if comp.test is None:
        raise PodiumError(f"{data_dir} has no test images (sample_submission.csv, test.csv or a test folder); "
                          "pass --images DIR to predict a folder of images.")
    pred = predict_checkpoints(checkpoints, comp.test["id"].tolist(), comp.test["path"].tolist(), accelerator, tta)
    sub = write_test_outputs(run, pred, comp.submission)
    return run.copy_submission(out) if out else sub
