"""``predict_data``: a run or an ensemble folder predicts a competition folder's test set into one submission file.

    models       a run: its fold checkpoints; an ensemble: each member run's fold checkpoints, with the ensemble's
                 weights and blend (``BLENDS``), members found where they were made or beside the ensemble folder
    test set     read as ``podium train`` reads it (data.ingest.read_test_set: the sample's ids, order and format)
    predict      inference.offline.predict_members (the one prediction path), precision and device as the machine has
    write        only ``out`` (validated against the sample) and the cache under $PODIUM_CACHE

This is the inference notebook of a Kaggle code competition: the run, ensemble and data folders may be read-only,
and the data folder may hold a hidden test set other than the one the run was trained beside.
"""

from __future__ import annotations

import os
from pathlib import Path

from podium.config import TrainConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.ingest import read_test_set
from podium.data.pixels.images import check_images
from podium.engine.accel import make_accelerator
from podium.engine.tta import check_views
from podium.inference.checkpoints import fold_table, probability_table
from podium.inference.offline import Member, predict_members, write_submission_file
from podium.inference.run import list_images
from podium.multirun.blends import BLENDS
from podium.runs.ensemble import Ensemble, is_ensemble
from podium.runs.run import Run


def models_of(path: str | Path) -> tuple[Run, list[Member], str | None]:
    """The folder (run or ensemble), its models as weighted members, and the blend name (None for a run)."""
    if is_ensemble(path):
        ens = Ensemble.open(path, writer=False)
        entries = ens.members["members"]
        members, missing = [], []
        for entry in entries:
            folder = ens.member_dir(entry)
            if not (folder / "run.json").is_file():
                missing.append(str(entry["run_dir"]))
                continue
            members.append(Member(folder.name, Run.open(folder, writer=False).checkpoints(), float(entry["weight"])))
        if missing:
            raise PodiumError(f"Ensemble {ens.path.name} lacks member run(s) {list_some(missing)}; copy them beside "
                              "the ensemble folder (podium pack does).")
        return ens, members, ens.members["blend"]
    run = Run.open(path, writer=False)
    return run, [Member(run.path.name, run.checkpoints())], None


def predict_data(folder: str | Path, data: str | Path, out: str | Path = "submission.csv",
                 tta: tuple[str, ...] | None = None, device: str = "auto", precision: str = "auto",
                 batch_size: int = 0) -> Path:
    """Predict the test set of the competition folder ``data`` with the run or ensemble ``folder`` and write the
    validated submission to ``out`` (nothing else is written but the image cache). ``precision=auto``: bf16/fp16
    on a GPU, fp32 on CPU; ``batch_size`` 0: the run's ``predict.batch_size`` (or twice its training batch)."""
    owner, members, blend = models_of(folder)
    if tta:
        check_views(tta)
    first = members[0].checkpoints[0]
    cfg = first.config
    test, fmt, _ = read_test_set(data, cfg.data, first.resolved_task(), list(first.classes))
    combine = BLENDS.get(blend).combine if blend else None
    accelerator = make_accelerator(TrainConfig(device=device, precision=precision))  # the machine's threads
    decisions = owner.decisions or dict(first.decisions)
    pred = predict_members(members, test["id"].tolist(), test["path"].tolist(), accelerator, decisions, combine, tta,
                           batch_size)
    if accelerator.is_main_process:
        write_submission_file(out, pred, fmt)
    return Path(out)


def predict_images(folder: str | Path, images: str | Path, out: str | Path | None = None,
                   tta: tuple[str, ...] | None = None, device: str = "auto") -> Path:
    """An ensemble folder's blended predictions of every image below ``images``: ``predictions-<name>.csv`` in the
    ensemble folder (or ``out``), with each fold's blend of the members' fold models in ``predictions-<name>-folds.csv``
    (the source of honest pseudo-labels on unlabelled images, ``data.pseudo_images``)."""
    owner, members, blend = models_of(folder)
    if tta:
        check_views(tta)
    root = Path(images).expanduser().resolve()
    ids, paths = list_images(root)
    bad = check_images(paths)
    if bad:
        raise PodiumError(f"{len(bad)} image(s) cannot be read: "
                          f"{list_some([f'{os.path.relpath(p, root)} ({w})' for p, w in bad.items()])}.")
    first = members[0].checkpoints[0]
    accelerator = make_accelerator(TrainConfig(device=device, precision=first.config.train.precision))
    pred = predict_members(members, ids, paths, accelerator, owner.decisions or dict(first.decisions),
                           BLENDS.get(blend).combine if blend else None, tta,
                           fold_weights=owner.members.get("fold_weights") if blend else None)
    owner = type(owner)(owner.path, writer=accelerator.is_main_process)
    return owner.write_predictions(root.name, probability_table(pred), out, fold_table(pred))
