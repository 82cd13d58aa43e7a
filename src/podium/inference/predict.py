"""``predict_saved``: the one entry point of prediction with saved models, which ``podium predict`` (``api.predict``)
calls. It picks the route from what it is given and returns the file written:

    onnx + images        an exported graph or bundle labels a folder of images through onnxruntime (``onnx``; no torch)
    folder + data        a run or ensemble predicts a competition folder's (hidden) test set, writing only ``out``
                         (``members.predict_data``: a Kaggle code competition's notebook)
    ensemble + images    the members' blended predictions of a folder of images (``members.predict_ensemble_images``)
    run [+ images]       the run's test set (test_predictions.csv, submission.csv) or a folder of images
                         (``run.predict_run``)

Each route is imported when it is taken: the ONNX route never loads torch."""

from __future__ import annotations

from pathlib import Path

from podium.core.errors import PodiumError


def predict_saved(folder: str | Path | None = None, images: str | Path | None = None, out: str | Path | None = None,
                  tta: tuple[str, ...] | None = None, device: str = "auto", data: str | Path | None = None,
                  onnx: str | Path | None = None, folds: tuple[int, ...] | None = None,
                  members: tuple[str, ...] | None = None) -> Path:
    """Predict with a run or ensemble ``folder`` (or an exported ``onnx`` file) and return the CSV written: a
    submission (no ``images``) or a table of ids, labels and class probabilities (``images``). Conflicting inputs
    are refused in one line before any model is loaded. ``folds`` and ``members`` predict with a subset of the
    models (an inference budget's choice, ``podium.inference.forecast.fit_inference_budget``)."""
    if onnx is not None:
        if images is None or folder is not None or data is not None:
            raise PodiumError("predict --onnx FILE --images DIR takes no run folder and no --data; it needs --images.")
        from podium.inference.onnx import predict_onnx_images

        return predict_onnx_images(onnx, images, out)
    if folder is None:
        raise PodiumError("predict needs a run or ensemble folder (or --onnx FILE --images DIR).")
    if data is not None:
        if images is not None:
            raise PodiumError("Give --data (a competition folder) or --images (a folder of images), not both.")
        from podium.inference.members import predict_data

        return predict_data(folder, data, out or "submission.csv", tta, device, folds=folds, members=members)
    from podium.runs.ensemble import is_ensemble

    if images is not None and is_ensemble(folder):  # an ensemble's members predict, blended with its weights
        from podium.inference.members import predict_ensemble_images

        return predict_ensemble_images(folder, images, out, tta, device, folds, members)
    if members:
        raise PodiumError(f"--members picks members of an ensemble folder with --data or --images; {folder} gets "
                          "neither.")
    from podium.inference.run import predict_run

    return predict_run(folder, images, out, tta, device, folds)
