"""A run or an ensemble folder as weighted members: each member's fold checkpoints predict through
``predict_checkpoints`` (its own preprocessing and TTA), the members' probabilities are combined with the ensemble's
weights and blend (``BLENDS``), and the folder's decisions decode them.

    models       a run: its fold checkpoints; an ensemble: each member run's fold checkpoints, members found where
                 they were made or beside the ensemble folder (``runs.ensemble.open_trained`` checks them first)
    predict_data a competition folder's test set, read as ``podium train`` reads it (``read_test_set``: the sample's
                 ids, order and format) -> only ``out`` (validated against the sample) and the cache under
                 $PODIUM_CACHE are written: a Kaggle code competition's notebook, with read-only run, ensemble and
                 data folders and a hidden test set other than the one the run was trained beside
    predict_ensemble_images  every image of a folder -> the ensemble folder's ``predictions-<name>.csv``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from accelerate import Accelerator

from podium.core.errors import PodiumError
from podium.data.folders.files import list_images
from podium.data.folders.ingest import read_test_set
from podium.engine.accel import inference_accelerator
from podium.engine.tta import check_views
from podium.inference.blends import BLENDS, Combine
from podium.inference.checkpoints import Prediction, fold_table, predict_checkpoints, probability_table
from podium.inference.run import pick_folds
from podium.runs.checkpoint import Checkpoint
from podium.runs.ensemble import Ensemble, open_trained
from podium.runs.run import Run
from podium.tasks.submission import SubmissionFormat, default_format, write_submission
from podium.tasks.task import Task


@dataclass(frozen=True)
class Member:
    """One model of a prediction: a run's fold checkpoints (averaged) and its weight in the blend."""

    name: str
    checkpoints: list[Checkpoint]
    weight: float = 1.0


def blend_folds(by_fold: list[dict[int, np.ndarray]], combine: Combine, weights: np.ndarray,
                fold_weights: dict[int, list[float]] | None, task: Task) -> dict[int, np.ndarray]:
    """Each fold's blend of the members' fold-k models, with the weights fitted without fold k's rows when the
    blend fitted them per fold (``fold_weights``), else ``weights``; empty unless every member has the same folds.
    What an ensemble's fold-k model is, for honest pseudo-labels."""
    folds = set(by_fold[0]) if by_fold else set()
    if not folds or any(set(b) != folds for b in by_fold):
        return {}
    # a holdout ensemble's fold_weights are keyed by the chunks its one fold was cross-fitted on, not by folds
    fw = fold_weights if fold_weights and set(map(int, fold_weights)) == folds else {}
    fw = {int(k): v for k, v in fw.items()}
    return {f: combine([b[f] for b in by_fold], np.asarray(fw.get(f, weights), dtype=np.float64), task)
            for f in sorted(folds)}


def predict_members(members: list[Member], ids: list[str], paths: list[str], accelerator: Accelerator,
                    decisions: dict, combine: Combine | None = None, views: tuple[str, ...] | None = None,
                    batch_size: int = 0, workers: int = -1, fold_weights: dict[int, list[float]] | None = None
                    ) -> Prediction:
    """Each member's fold-averaged probabilities (its own preprocessing and TTA), combined with the members' weights
    (``combine``; a single member is taken as it is), with ``decisions`` to decode them. ``by_fold``: each fold's
    blend (``blend_folds``, with ``fold_weights``)."""
    if not members:
        raise PodiumError("No model to predict with.")
    preds = [predict_checkpoints(m.checkpoints, ids, paths, accelerator, views, batch_size, workers) for m in members]
    first = preds[0]
    for m, p in zip(members[1:], preds[1:]):
        if (p.classes, p.task.name) != (first.classes, first.task.name):
            raise PodiumError(f"{m.name} predicts other classes or another task than {members[0].name}; they "
                              "cannot be blended.")
    if len(preds) == 1:
        probs, by_fold = first.probs, first.by_fold
    else:
        if combine is None:
            raise PodiumError("Several members need a blend to combine them.")
        weights = np.array([m.weight for m in members], dtype=np.float64)
        probs = combine([p.probs for p in preds], weights, first.task)
        by_fold = blend_folds([p.by_fold for p in preds], combine, weights, fold_weights, first.task)
    return Prediction(list(ids), probs, first.task, list(first.classes), dict(decisions), by_fold)


def write_submission_file(out: str | Path, pred: Prediction, fmt: SubmissionFormat | None) -> pd.DataFrame:
    """The submission in the sample's exact format (ids, order, columns), written atomically to ``out`` and
    validated on disk; without a sample, the task's default format."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise PodiumError(f"--out {out} is a folder; give the submission file, e.g. {out / 'submission.csv'}.")
    fmt = fmt or default_format(pred.task, pred.classes, pred.ids)
    return write_submission(out, fmt, pred.ids, pred.probs, pred.classes, pred.threshold,
                            labels=pred.task.decode(pred.probs, pred.decisions, pred.classes))


def models_of(path: str | Path, folds: tuple[int, ...] | None = None, members: tuple[str, ...] | None = None
              ) -> tuple[Run, list[Member], str | None]:
    """The folder (run or ensemble), its models as weighted members, and the blend name (None for a run); a run
    without a finished fold, or an ensemble missing a member, is refused first (``open_trained``). ``folds``: only
    those fold models of every member; ``members``: only those members of an ensemble (by name), their weights
    rescaled to sum to 1 (an inference budget's choice, ``podium.inference.forecast``)."""
    owner = open_trained(path, "predict with")
    if not isinstance(owner, Ensemble):
        if members:
            raise PodiumError(f"--members picks members of an ensemble; {path} is a run.")
        return owner, [Member(owner.path.name, pick_folds(owner.checkpoints(), folds, owner.path))], None
    chosen = [Member(owner.member_dir(e).name,
                     pick_folds(Run.open(owner.member_dir(e), writer=False).checkpoints(), folds, owner.member_dir(e)),
                     float(e["weight"])) for e in owner.members["members"]
              if members is None or owner.member_dir(e).name in members]
    names = [owner.member_dir(e).name for e in owner.members["members"]]
    if members is not None and (len(chosen) != len(set(members)) or not chosen):
        raise PodiumError(f"--members {','.join(members)}: {path} has members {', '.join(names)}; name some of them.")
    if members is not None:  # the kept members' weights, rescaled so that a weighted mean stays a mean
        total = sum(m.weight for m in chosen) or float(len(chosen))
        chosen = [Member(m.name, m.checkpoints, (m.weight or 1.0) / total) for m in chosen]
    return owner, chosen, owner.members["blend"]


def predict_data(folder: str | Path, data: str | Path, out: str | Path = "submission.csv",
                 tta: tuple[str, ...] | None = None, device: str = "auto", precision: str = "auto",
                 batch_size: int = 0, folds: tuple[int, ...] | None = None, members: tuple[str, ...] | None = None
                 ) -> Path:
    """Predict the test set of the competition folder ``data`` with the run or ensemble ``folder`` and write the
    validated submission to ``out`` (nothing else is written but the image cache). ``precision=auto``: bf16/fp16
    on a GPU, fp32 on CPU; ``batch_size`` 0: the run's ``predict.batch_size`` (or twice its training batch).
    ``folds``, ``members``: a subset of the models (``models_of``), as an inference budget chose."""
    owner, members, blend = models_of(folder, folds, members)
    if tta:
        check_views(tta)
    first = members[0].checkpoints[0]
    test, fmt, _ = read_test_set(data, first.config.data, first.resolved_task(), list(first.classes))
    accelerator = inference_accelerator(device, None, precision)  # this machine's precision and threads
    pred = predict_members(members, test["id"].tolist(), test["path"].tolist(), accelerator,
                           owner.decisions or dict(first.decisions), BLENDS.get(blend).combine if blend else None,
                           tta, batch_size)
    if accelerator.is_main_process:
        write_submission_file(out, pred, fmt)
    return Path(out)


def predict_ensemble_images(folder: str | Path, images: str | Path, out: str | Path | None = None,
                            tta: tuple[str, ...] | None = None, device: str = "auto",
                            folds: tuple[int, ...] | None = None, members: tuple[str, ...] | None = None) -> Path:
    """An ensemble folder's blended predictions of every image below ``images``: ``predictions-<name>.csv`` in the
    ensemble folder (or ``out``), with each fold's blend of the members' fold models in ``predictions-<name>-folds.csv``
    (the source of honest pseudo-labels on unlabelled images, ``data.pseudo_images``). ``folds``, ``members``: a
    subset of the models (``models_of``)."""
    subset = members is not None  # the fitted per-fold weights are the full ensemble's
    owner, members, blend = models_of(folder, folds, members)
    if tta:
        check_views(tta)
    root = Path(images).expanduser().resolve()
    ids, paths = list_images(root)
    first = members[0].checkpoints[0]
    accelerator = inference_accelerator(device, first.config)
    pred = predict_members(members, ids, paths, accelerator, owner.decisions or dict(first.decisions),
                           BLENDS.get(blend).combine if blend else None, tta,
                           fold_weights=owner.members.get("fold_weights") if blend and not subset else None)
    owner = type(owner)(owner.path, writer=accelerator.is_main_process)
    return owner.write_predictions(root.name, probability_table(pred), out, fold_table(pred))
