"""Pseudo-labels (``data.pseudo``): a finished run's or ensemble's predictions of this competition's test set, or of
a folder of unlabelled images (``data.pseudo_images``), added as train-only rows of source ``pseudo``: never
validated, never in OOF, left out where they duplicate a training image.

Honest by default (``data.pseudo_folds=matched``). The pseudo rows that train fold k's model are labelled by the
source's fold-k model alone (for an ensemble: the blend of its members' fold-k models, with the weights fitted
without fold k), which never trained on fold k's rows, provided the source used the same folds
(``check_pseudo_folds``, once the folds are known). ``averaged`` labels them with the source's fold average, what its
submission holds: K-1 of those models trained on the new run's validation fold, and what they learned from it reaches
the new fold model through the pseudo rows, so the CV is flattered (measured in bench/results/soft_labels.md).

``data.pseudo_share=all``: every fold's model trains on every image (matched: one row per image and fold, each with
that fold's targets, ids ``pseudo/f<k>/<id>``); ``fold``: each image trains one fold's model (seeded by id, so resume
and reruns agree; id ``pseudo/<id>``). A row's ``part`` names the fold it trains in (-1: every fold) and
``pseudo_id`` the image id in the source's predictions.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import DataConfig, PodiumConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.files import list_images
from podium.data.folders.ingest import Competition
from podium.data.integrity import Integrity
from podium.data.pixels.checks import check_files, phash_ints
from podium.data.pixels.duplicates import find_clusters
from podium.inference.checkpoints import fold_arrays
from podium.inference.sources import open_source, provenance, same_folds
from podium.runs.run import Run

PSEUDO = "pseudo"  # the source tag of pseudo-labelled rows


@dataclasses.dataclass(frozen=True)
class Unlabelled:
    """The images to pseudo-label: ids as the source's predictions name them, paths, the folder's name (empty for
    the test set) and the ids that duplicate a training image."""

    ids: list[str]
    paths: list[str]
    name: str
    leaking: set[str]
    folder: str = ""  # the folder's full path (empty for the test set)


def duplicates_of_train(ids: list[str], paths: list[str], integ: Integrity, dc: DataConfig, where: str) -> set[str]:
    """The ids among ``ids`` whose image duplicates (exactly or within data.near_distance) a training image; every
    image must be readable."""
    if integ.table is None:  # data.check_images=false: no hashes to compare with
        return set()
    table = check_files(paths)
    bad = table["error"].notna().to_numpy()
    if bad.any():
        named = [f"{i} ({e})" for i, e in zip(np.asarray(ids)[bad], table["error"][bad])]
        raise PodiumError(f"data.pseudo_images={where}: {int(bad.sum())} image(s) cannot be read: {list_some(named)}. "
                          "Remove them from the folder.")
    train = integ.table[integ.table["split"] == "train"]
    sha1 = train["sha1"].astype(str).tolist() + table["sha1"].astype(str).tolist()
    hashes = np.concatenate([phash_ints(train["phash"]), phash_ints(table["phash"])])
    cluster, _ = find_clusters(sha1, hashes, dc.near_distance)
    seen = set(cluster[:len(train)].tolist())
    return {i for i, c in zip(ids, cluster[len(train):]) if c in seen}


def unlabelled_images(comp: Competition, integ: Integrity, dc: DataConfig) -> Unlabelled:
    """The test set, or every image below data.pseudo_images (ids relative to it, as ``podium predict --images``
    names them)."""
    if dc.pseudo_images:
        folder = Path(dc.pseudo_images).expanduser().resolve()
        ids, paths = list_images(folder, check=False)  # duplicates_of_train checks them, with their hashes
        return Unlabelled(ids, paths, folder.name, duplicates_of_train(ids, paths, integ, dc, dc.pseudo_images),
                          str(folder))
    if comp.test is None:
        raise PodiumError(f"data.pseudo={dc.pseudo}: this data has no test images to pseudo-label; give a folder of "
                          "unlabelled images as data.pseudo_images.")
    leaking = set(integ.overlap["test_id"].astype(str)) if len(integ.overlap) else set()
    return Unlabelled(comp.test["id"].astype(str).tolist(), comp.test["path"].tolist(), "", leaking)


def source_predictions(src: Run, images: Unlabelled, classes: list[str], key: str
                       ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The source's fold-averaged probabilities of ``images`` and each of its fold models' (empty without them)."""
    predict = f"podium predict {src.path}" + (f" --images {images.folder}" if images.folder else "")
    try:
        table = src.predictions(images.name)
    except PodiumError as e:
        raise PodiumError(f"{key}={src.path}: {e} Predict them first: `{predict}`.") from None
    table = table.assign(id=table["id"].astype(str)).set_index("id")
    missing = [i for i in images.ids if i not in table.index]
    if missing:
        raise PodiumError(f"{key}={src.path} has no prediction for {len(missing)} image(s) ({list_some(missing, 5)});"
                          f" predict them first: `{predict}`.")
    probs = table.loc[images.ids, classes].to_numpy(dtype=np.float64)
    return probs, fold_arrays(src.fold_predictions(images.name), images.ids, classes)


def pseudo_rows(n: int, ids: list[str], cfg: PodiumConfig, folds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Which image each pseudo row is and the fold it trains in (-1: all), per data.pseudo_share and _folds."""
    dc, k = cfg.data, cfg.cv.folds
    if dc.pseudo_share == "fold":  # seeded by id: resume and reruns split alike
        part = np.array([zlib.crc32(f"{cfg.cv.seed}:{i}".encode()) % k for i in ids], dtype=np.int64)
        image = np.arange(n)
        keep = np.isin(part, folds) if dc.pseudo_folds == "matched" else np.ones(n, dtype=bool)
        return image[keep], part[keep]
    if dc.pseudo_folds == "averaged":
        return np.arange(n), np.full(n, -1, dtype=np.int64)
    return np.tile(np.arange(n), len(folds)), np.repeat(np.asarray(folds, dtype=np.int64), n)


@dataclasses.dataclass(frozen=True)
class PseudoRows:
    """The pseudo rows kept: which image each is (index into ``Unlabelled``), the fold it trains in (-1: every fold),
    its labelling probabilities, its image id, its hard label (``Task.predict``); and how many rows were left out as
    unsure."""

    image: np.ndarray
    part: np.ndarray
    probs: np.ndarray
    ids: np.ndarray
    hard: np.ndarray
    unsure: int


def with_pseudo(comp: Competition, integ: Integrity, cfg: PodiumConfig) -> tuple[Competition, Integrity, dict]:
    """``comp`` with the source's predictions appended as train-only ``pseudo`` rows: soft targets, or hard ones
    where the labelling model is at least ``data.pseudo_threshold`` sure (the rest dropped). Returns the provenance
    too (for run.json)."""
    if not cfg.data.pseudo:
        return comp, integ, {}
    src = open_source(cfg.data.pseudo, "data.pseudo", comp)
    images = unlabelled_images(comp, integ, cfg.data)
    rows = pseudo_labels(src, images, comp, cfg)
    comp, integ = append_pseudo(comp, integ, images, rows, cfg.data)
    return comp, integ, pseudo_info(src, images, rows, cfg.data)


def pseudo_labels(src: Run, images: Unlabelled, comp: Competition, cfg: PodiumConfig) -> PseudoRows:
    """The labelled rows (``pseudo_rows``) with the probabilities of the model that labels each (matched: the
    source's fold-k model for rows of fold k; averaged: its fold average), less the duplicates of training images and
    the rows less sure than ``data.pseudo_threshold``."""
    dc = cfg.data
    blended, by_fold = source_predictions(src, images, list(comp.classes), "data.pseudo")
    check_fold_models(src, images, by_fold, cfg)
    # rows for every fold the source can label, not only cv.train_folds: the ids then do not depend on which folds
    # this process trains, so runs trained fold by fold (podium merge) and resumed runs list the same rows
    labelled = sorted(set(by_fold) & set(range(cfg.cv.folds)))
    image, part = pseudo_rows(len(images.ids), images.ids, cfg, labelled)
    matched = dc.pseudo_folds == "matched"
    probs = np.stack([by_fold[p][i] for i, p in zip(image, part)]) if matched and len(image) else blended[image]
    sure = comp.task.confidence(probs) >= dc.pseudo_threshold
    ids = np.asarray(images.ids, dtype=object)[image]
    clean = np.array([i not in images.leaking for i in ids], dtype=bool)
    keep = clean & sure
    return PseudoRows(image[keep], part[keep], probs[keep], ids[keep], comp.task.predict(probs[keep], {}),
                      int((clean & ~sure).sum()))


def check_fold_models(src: Run, images: Unlabelled, by_fold: dict[int, np.ndarray], cfg: PodiumConfig) -> None:
    """Honest pseudo-labels (``data.pseudo_folds=matched``) need the source's fold-k predictions of the images for
    every fold k this run trains."""
    folds = sorted(cfg.cv.train_folds) or list(range(cfg.cv.folds))
    lacking = [f for f in folds if f not in by_fold]
    if cfg.data.pseudo_folds == "matched" and lacking:
        raise PodiumError(
            f"data.pseudo={src.path} has no predictions of its fold {list_some(lacking)} model(s) on these images, "
            "and honest pseudo-labels (data.pseudo_folds=matched) label fold k's rows with the source's fold-k model. "
            f"Predict again with `podium predict {src.path}`{' --images DIR' if images.name else ''} (it keeps each "
            "fold's predictions), use a source trained on these folds, or set data.pseudo_folds=averaged (its fold "
            "average, which flatters the CV).")


def append_pseudo(comp: Competition, integ: Integrity, images: Unlabelled, rows: PseudoRows, dc: DataConfig
                  ) -> tuple[Competition, Integrity]:
    """``comp`` with ``rows`` appended as training rows of source ``pseudo`` (soft targets, or with a threshold their
    hard labels), each in a fold group of its own."""
    copies = dc.pseudo_folds == "matched" and dc.pseudo_share == "all"  # one row per image and fold: ids by fold
    row_ids = [f"{PSEUDO}/f{p}/{i}" if copies else f"{PSEUDO}/{i}" for i, p in zip(rows.ids, rows.part)]
    new = pd.DataFrame({"id": row_ids, "path": np.asarray(images.paths, dtype=object)[rows.image], "source": PSEUDO,
                        "part": rows.part, "pseudo_id": rows.ids})
    train = comp.train if "source" in comp.train.columns else comp.train.assign(source="train")
    train = pd.concat([train.assign(part=-1) if "part" not in train else train, new], ignore_index=True)
    n = len(comp.classes)
    targets = np.concatenate([comp.targets, rows.hard.astype(comp.targets.dtype)])
    base = comp.train_targets if comp.train_targets is not None else comp.task.onehot(comp.targets, n)
    pseudo_targets = rows.probs if dc.pseudo_threshold <= 0 else comp.task.onehot(rows.hard, n)
    groups = np.concatenate([integ.groups, integ.groups.max(initial=-1) + 1 + np.arange(len(new))])
    comp = dataclasses.replace(comp, train=train, targets=targets,
                               train_targets=np.concatenate([base, pseudo_targets]).astype(np.float32))
    return comp, dataclasses.replace(integ, groups=groups)


def pseudo_info(src: Run, images: Unlabelled, rows: PseudoRows, dc: DataConfig) -> dict:
    """The provenance of the pseudo rows for run.json, with ``note``, the line the training log says about them."""
    info = {**provenance(src), "images": int(len(set(rows.ids))), "rows": int(len(rows.ids)),
            "unlabelled": f"folder {images.name}" if images.name else "test set", "folds": dc.pseudo_folds,
            "share": dc.pseudo_share,
            "soft": dc.pseudo_threshold <= 0, "dropped_duplicates": len(images.leaking & set(images.ids)),
            "dropped_unsure": rows.unsure}
    by = ("fold k's rows by its fold-k model" if dc.pseudo_folds == "matched" else
          "its fold average (flatters the CV)")
    info["note"] = (f"{info['images']} images of the {info['unlabelled']} in {info['rows']} train-only rows, "
                    f"{'soft' if info['soft'] else 'hard'} targets from {by}; {info['dropped_duplicates']} "
                    f"duplicate(s) of training images and {info['dropped_unsure']} unsure row(s) left out")
    return info


def check_pseudo_folds(comp: Competition, folds: np.ndarray, cfg: PodiumConfig) -> None:
    """Matched pseudo-labels are honest only when the source's fold k is this run's fold k: checked once the folds
    are known (before any folder exists)."""
    if cfg.data.pseudo and cfg.data.pseudo_folds == "matched":
        same_folds(open_source(cfg.data.pseudo, "data.pseudo", comp), comp, folds, "data.pseudo",
                   "or set data.pseudo_folds=averaged (which flatters the CV)")


def teacher_on_pseudo(src: Run, comp: Competition, teacher: np.ndarray, cfg: PodiumConfig) -> None:
    """Fill the teacher's probabilities of the pseudo rows (in place): its fold-k model's for rows that train fold k
    when it has them (same folds: checked by the caller), else its fold average; rows it never predicted stay NaN."""
    if "source" not in comp.train.columns or not (comp.train["source"] == PSEUDO).any():
        return
    rows = np.flatnonzero((comp.train["source"] == PSEUDO).to_numpy())
    ids = comp.train["pseudo_id"].iloc[rows].astype(str).tolist()
    part = comp.train["part"].iloc[rows].to_numpy()
    name = Path(cfg.data.pseudo_images).expanduser().resolve().name if cfg.data.pseudo_images else ""
    path = src.predictions_path(name)
    if not path.is_file():
        return
    table = src.predictions(name)
    table = table.assign(id=table["id"].astype(str)).set_index("id")
    known = np.array([i in table.index for i in ids], dtype=bool)
    by_fold = fold_arrays(src.fold_predictions(name), [i for i, k in zip(ids, known) if k], list(comp.classes))
    values = table.loc[[i for i, k in zip(ids, known) if k], list(comp.classes)].to_numpy(dtype=np.float64)
    for j, p in enumerate(part[known]):
        if int(p) in by_fold:
            values[j] = by_fold[int(p)][j]
    teacher[rows[known]] = values
