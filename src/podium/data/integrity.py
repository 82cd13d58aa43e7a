"""The checks every run makes before training: bad images, duplicate clusters, label conflicts, train/test overlap and
the groups that keep duplicates in one fold. ``podium inspect`` reports the same ``Integrity`` without training.
``plan_folds`` joins the competition, its groups and ``data.training.folds`` into the run's folds.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import CVConfig, DataConfig
from podium.core.errors import PodiumError, list_some
from podium.core.io import write_csv
from podium.core.registry import Registry
from podium.data.folders.extra import is_main, leaking_extra_rows, with_extra
from podium.data.folders.ingest import Competition, load_competition, screen_images
from podium.data.pixels.cache import first_pass_cache
from podium.data.pixels.checks import PixelSink, phash_ints
from podium.data.pixels.duplicates import cluster_labels, find_clusters
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.folds import check_folds, check_stratifiable, make_folds, read_folds

DUPLICATE_COLUMNS = ("cluster", "kind", "size", "split", "id", "label", "conflict")


@dataclass(frozen=True)
class Integrity:
    """What the checks found. ``groups`` is aligned with the (possibly reduced) ``Competition.train``."""

    table: pd.DataFrame | None  # per image: split, id, path, error, width, height, mode, bytes, sha1, phash
    dropped_bad: list[str]  # unreadable training images dropped by data.skip_bad
    duplicates: pd.DataFrame  # one row per member of a duplicate cluster (DUPLICATE_COLUMNS)
    conflicts: list[dict]  # clusters whose training members disagree on the label
    overlap: pd.DataFrame  # test images that duplicate training images: test_id, kind, train_ids, train_labels
    dropped_conflicts: list[str]  # training ids removed by data.conflicts
    groups: np.ndarray  # fold group of each training row (duplicate clusters united with data.group_col)
    dropped_extra: list[str] = dataclasses.field(default_factory=list)  # data.extra rows duplicating the competition

    def write_duplicates(self, folder: Path) -> Path:
        """Write ``duplicates.csv`` (every cluster with its ids and labels) into ``folder``."""
        return write_csv(folder / "duplicates.csv", self.duplicates)


# A conflict policy gets the labels of a conflicting cluster's training rows and returns the positions to keep.
ConflictPolicy = Callable[[list[str]], list[int]]
CONFLICT_POLICIES: Registry[ConflictPolicy] = Registry("conflict policy")


@CONFLICT_POLICIES.register("keep")
def _keep(labels: list[str]) -> list[int]:
    return list(range(len(labels)))  # every row stays; the cluster still lands in one fold


@CONFLICT_POLICIES.register("drop")
def _drop(labels: list[str]) -> list[int]:
    return []


@CONFLICT_POLICIES.register("majority")
def _majority(labels: list[str]) -> list[int]:
    (top, n), *rest = Counter(labels).most_common()
    if rest and rest[0][1] == n:
        return []  # a tie has no majority: the cluster's label is unknowable, so none of its rows is kept
    return [labels.index(top)]


def _cluster_frame(comp: Competition, table: pd.DataFrame, cluster: np.ndarray, exact: np.ndarray) -> pd.DataFrame:
    labels = comp.label_strings() + [""] * int((table["split"] == "test").sum())
    df = pd.DataFrame({"cluster": cluster, "kind": np.where(exact, "exact", "near"), "split": table["split"],
                       "id": table["id"], "label": labels, "row": np.arange(len(table))})
    df["size"] = df.groupby("cluster")["id"].transform("size")
    df = df[df["size"] > 1].copy()
    train = df[df["split"] == "train"]
    n_labels = train.groupby("cluster")["label"].nunique()
    df["conflict"] = df["cluster"].map(n_labels).fillna(0).to_numpy() > 1
    # renumber clusters 0.. in order of first appearance so the CSV reads top-down
    order = {c: i for i, c in enumerate(pd.unique(df["cluster"]))}
    df["cluster"] = df["cluster"].map(order)
    return df.sort_values(["cluster", "split", "row"], ascending=[True, False, True], kind="stable")


def _overlap(dups: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, g in dups.groupby("cluster", sort=True):
        train, test = g[g["split"] == "train"], g[g["split"] == "test"]
        for _, t in test.iterrows():
            if len(train):
                rows.append({"test_id": t["id"], "kind": t["kind"], "train_ids": " ".join(train["id"]),
                             "train_labels": " | ".join(pd.unique(train["label"]))})
    return pd.DataFrame(rows, columns=["test_id", "kind", "train_ids", "train_labels"])


def _groups(n: int, clusters: np.ndarray | None, user: pd.Series | None) -> np.ndarray:
    """Union of duplicate clusters and user groups as one group id per row (an empty user cell groups nothing)."""
    left, right = [np.arange(n)], [np.arange(n)]
    offset = n
    for part in (clusters, None if user is None else user.to_numpy()):
        if part is None:
            continue
        codes = pd.Series(part).astype(str)
        codes = codes.where(codes != "", pd.Series([f"\0row{i}" for i in range(n)]))  # empty cell: row on its own
        ids = np.unique(codes.to_numpy().astype(str), return_inverse=True)[1]
        left.append(np.arange(n))
        right.append(offset + ids)
        offset += int(ids.max()) + 1
    return np.unique(cluster_labels(offset, np.concatenate(left), np.concatenate(right))[:n], return_inverse=True)[1]


def check_competition(comp: Competition, cfg: DataConfig, strict: bool = True, sink: PixelSink | None = None
                      ) -> tuple[Competition, Integrity]:
    """Screen the images, find duplicates, apply the conflict policy and build fold groups (see ``Integrity``).

    ``strict=False`` reports unreadable images instead of stopping (``podium inspect``); ``sink`` (the run's
    decoded-image cache) takes the pixels of the same decode.
    """
    policy = CONFLICT_POLICIES.get(cfg.conflicts)
    empty = pd.DataFrame(columns=list(DUPLICATE_COLUMNS))
    no_overlap = pd.DataFrame(columns=["test_id", "kind", "train_ids", "train_labels"])
    user = comp.train["group"] if "group" in comp.train.columns else None
    if not cfg.check_images:
        return comp, Integrity(None, [], empty, [], no_overlap, [], _groups(len(comp.train), None, user))
    comp, table, dropped = screen_images(comp, cfg.skip_bad, strict, sink)
    cluster, exact = find_clusters(table["sha1"].tolist(), phash_ints(table["phash"]), cfg.near_distance)
    dups = _cluster_frame(comp, table, cluster, exact)
    conflicts, keep = [], np.ones(len(comp.train), dtype=bool)
    for c, g in dups[dups["conflict"] & (dups["split"] == "train")].groupby("cluster", sort=True):
        labels = g["label"].tolist()
        kept = set(policy(labels))
        keep[g["row"].to_numpy()[[i for i in range(len(g)) if i not in kept]]] = False
        conflicts.append({"cluster": int(c), "ids": g["id"].tolist(), "labels": labels,
                          "kept": [g["id"].iloc[i] for i in sorted(kept)]})
    dropped_conflicts = comp.train["id"][~keep].tolist()
    n_train = len(comp.train)
    train_clusters = cluster[:n_train][keep]
    if not keep.all():
        comp = dataclasses.replace(comp, train=comp.train[keep].reset_index(drop=True), targets=comp.targets[keep])
        user = comp.train["group"] if user is not None else None
    if len(comp.train) < 2:
        raise PodiumError(f"data.conflicts={cfg.conflicts} left {len(comp.train)} training image(s); use keep.")
    groups = _groups(len(comp.train), train_clusters, user)
    out = dups.drop(columns="row")[list(DUPLICATE_COLUMNS)].reset_index(drop=True)
    return comp, Integrity(table, dropped, out, conflicts, _overlap(dups), dropped_conflicts, groups)


def prepare(root: str | Path, cfg: DataConfig, strict: bool = True,
            prep: Preprocessing | None = None) -> tuple[Competition, Integrity]:
    """Read the competition folder (and its ``data.extra`` folders) and run every check on it (errors stop here,
    before any training).

    ``prep``: the preprocessing of the coming run's model; the check pass fills the decoded-image stores its folds and
    test prediction will read (``cache.first_pass_cache``) with the same decode, so a first run decodes each image
    once."""
    comp = with_extra(load_competition(root, cfg, check=False), cfg)
    filler = None
    if prep is not None and cfg.check_images:
        paths = comp.train["path"].tolist() + ([] if comp.test is None else comp.test["path"].tolist())
        filler = first_pass_cache(paths, prep, cfg)
    with filler if filler is not None else nullcontext():
        checked, integ = check_competition(comp, cfg, strict, filler)
    leaking = leaking_extra_rows(checked, integ.duplicates)
    if not len(leaking):
        return checked, integ
    # Extra images that duplicate competition images are dropped, then everything is checked again, so that the
    # conflict policy and the fold groups never see them (the image checks are cached: the second pass is cheap).
    dropped = checked.train["id"].iloc[leaking].tolist()
    keep = ~comp.train["id"].isin(dropped).to_numpy()
    comp = dataclasses.replace(comp, train=comp.train[keep].reset_index(drop=True), targets=comp.targets[keep])
    checked, integ = check_competition(comp, cfg, strict)
    return checked, dataclasses.replace(integ, dropped_extra=dropped)


def plan_folds(comp: Competition, integ: Integrity, cv: CVConfig, saved: Path | None = None) -> np.ndarray:
    """The run's folds: read back from ``saved`` (a resumed run's folds.csv), from cv.folds_file, or computed
    (stratified, group-aware); data.extra rows train in every fold and validate in none (fold -1).

    Every duplicate cluster and user group must sit in one fold, whichever way the folds were made.
    """
    ids = comp.train["id"].tolist()
    main = is_main(comp)
    if saved is not None:
        folds, source = read_folds(saved, ids, cv.folds), str(saved)
    elif cv.folds_file:
        folds = np.full(len(ids), -1, dtype=np.int64)  # the user's file covers the competition's own rows
        folds[main] = read_folds(cv.folds_file, [i for i, m in zip(ids, main) if m], cv.folds)
        source = cv.folds_file
    else:
        targets, groups = comp.targets[main], integ.groups[main]
        check_stratifiable(targets, comp.task, comp.classes, [i for i, m in zip(ids, main) if m], k=cv.folds,
                           groups=groups)
        folds = np.full(len(ids), -1, dtype=np.int64)
        folds[main] = make_folds(targets, comp.task, cv.folds, cv.seed, groups, classes=comp.classes)
        source = "the folds"
    check_folds(folds, integ.groups, ids, source)
    return folds


def integrity_line(integ: Integrity) -> str:
    """One line for the training log: what the checks found and did."""
    n_clusters = int(integ.duplicates["cluster"].nunique()) if len(integ.duplicates) else 0
    exact = int(integ.duplicates.loc[integ.duplicates["kind"] == "exact", "cluster"].nunique())
    parts = [f"checks: {n_clusters} duplicate cluster(s) ({exact} byte-identical, {n_clusters - exact} near), "
             f"kept in one fold each", f"{len(integ.conflicts)} label conflict(s)",
             f"{len(integ.overlap)} test image(s) duplicating training images"]
    if integ.dropped_conflicts:
        parts.append(f"{len(integ.dropped_conflicts)} conflicting row(s) dropped")
    if integ.dropped_bad:
        parts.append(f"{len(integ.dropped_bad)} unreadable image(s) skipped")
    if integ.dropped_extra:
        parts.append(f"{len(integ.dropped_extra)} data.extra image(s) duplicating competition images dropped "
                     f"({list_some(integ.dropped_extra, 5)})")
    if n_clusters:
        parts.append("listed in duplicates.csv")
    if integ.table is None:
        parts = ["checks: skipped (data.check_images=false); folds follow data.group_col only"]
    return "; ".join(parts)
