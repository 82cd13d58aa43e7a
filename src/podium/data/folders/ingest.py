"""Ingest a competition folder into one ``Competition``: training images with targets, test images, submission format.

Layouts (a CSV of ids and labels, or a folder per class: podium.data.folders.layouts) are registered readers that
produce ids, image paths and raw labels; everything after that (classes, task, targets, where each image is, the test
set, the sample submission, the image checks) is shared, here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.columns import ColumnRoles, check_ids
from podium.data.folders.files import TEST_DIRS, TRAIN_DIRS, FolderIndex, check_name, nested_dirs, resolve_images
from podium.data.folders.layouts import LAYOUTS, RawLabels, detect_layout
from podium.data.folders.tables import read_csv
from podium.data.pixels.checks import PixelSink, check_files
from podium.data.pixels.images import is_image
from podium.tasks.submission import SubmissionFormat, implied_metric, infer_format
from podium.tasks.task import TASKS, Task, detect_task, get_task


@dataclass(frozen=True)
class Competition:
    """Everything training and prediction need to know about a data folder."""

    root: Path
    layout: str
    task: Task
    classes: tuple[str, ...]
    train: pd.DataFrame  # columns: id, path
    targets: np.ndarray  # (N,) class indices, or (N, C) 0/1 for multilabel
    test: pd.DataFrame | None  # columns: id, path
    submission: SubmissionFormat | None
    sample_path: Path | None = None
    notes: tuple[str, ...] = ()  # what was decided where the folder left it open, each with its override
    roles: ColumnRoles | None = None
    class_names: dict[str, str] = dataclasses.field(default_factory=dict)  # label -> name (Cassava's JSON map)
    # the metric the sample implies (tasks.submission.implied_metric: mean_auc for probability columns, f1_samples for
    # space-separated labels, ...) and why; '': the task's own. What cv.metric=auto resolves to (``scored_by``)
    metric: str = ""
    metric_why: str = ""

    def shown(self, cls: str) -> str:
        """A class as people read it: ``3 (Cassava Mosaic Disease (CMD))`` where the folder names its labels."""
        return f"{cls} ({self.class_names[cls]})" if cls in self.class_names else cls
    # What the loss sees for each training row when it is not ``targets``: soft labels, pseudo-labels, a teacher's
    # probabilities (podium.inference.teachers); float (N, C), or (N, 2C) as [truth, teacher] for distillation
    train_targets: np.ndarray | None = None
    # How often each training row is drawn relative to the others (N,), 0: never (data.suspects' drop and weight
    # actions, podium.inference.noisy_labels); validation is unaffected. None: every row alike
    train_weights: np.ndarray | None = None

    def label_strings(self) -> list[str]:
        """Human-readable label of each training row (space-joined where a row holds several)."""
        return self.task.label_strings(self.targets, self.classes)


# ------------------------------------------------------------------------------------------------------ helpers


def _number(label: str) -> float | None:
    try:
        return float(label)
    except ValueError:
        return None


def _natural_sorted(labels: set[str]) -> list[str]:
    """Numeric labels by value ("10" after "9", "0.5" before "1"), others alphabetically."""
    if all(_number(s) is not None for s in labels):
        return sorted(labels, key=lambda s: (_number(s), s))
    return sorted(labels)


# ------------------------------------------------------------------------------------------------------ assembly


def _class_order(found: set[str], order: tuple[str, ...]) -> tuple[str, ...]:
    """``data.class_order``, checked against the training labels: every class once, nothing else."""
    dup = sorted({c for c in order if order.count(c) > 1})
    unknown = [c for c in order if c not in found]
    missing = sorted(found - set(order))
    if dup or unknown or missing:
        why = (f"repeats {list_some(dup)}" if dup else f"names {list_some(unknown)}, which no training label is"
               if unknown else f"leaves out {list_some(missing)}")
        raise PodiumError(f"data.class_order {why}; list every class once, from first to last: "
                          f"data.class_order=[{','.join(_natural_sorted(found))}] in your order.")
    return order


def _targets(raw: RawLabels, cfg: DataConfig) -> tuple[Task, tuple[str, ...], np.ndarray]:
    """Task, classes and target array from raw labels: the configured task, or with ``auto`` the detected one; the
    classes in ``data.class_order``, else in the CSV's column order (one 0/1 column per class) or naturally sorted."""
    if raw.onehot is not None:
        classes = raw.columns
        lists = [[classes[i] for i in np.flatnonzero(row)] for row in raw.onehot]
    else:
        assert raw.lists is not None
        lists = raw.lists
        classes = tuple(_natural_sorted({t for labels in lists for t in labels}))
    if cfg.class_order:
        classes = _class_order(set(classes), cfg.class_order)
    grades = raw.roles is not None and raw.roles.grades  # integer grades 0..K-1 in a column named like a grade
    task = detect_task(lists, classes, grades) if cfg.task == "auto" else get_task(cfg.task)
    words = [c for c in classes if _number(c) is None]
    if task.ordered and words and not cfg.class_order:
        raise PodiumError(f"data.task={task.name} ranks the classes, but {list_some(words)} are not numbers; give "
                          f"their order from lowest to highest, e.g. data.class_order=[{','.join(classes)}].")
    return task, classes, task.from_labels(lists, classes)


def _read_test(root: Path, cfg: DataConfig) -> tuple[pd.DataFrame | None, pd.DataFrame | None, Path | None]:
    """The test table (id, path) and the raw sample submission, from the sample, test.csv or a test folder."""
    sample_path = root / cfg.sample_submission
    sample = read_csv(sample_path, cfg) if sample_path.is_file() else None
    listing = sample if sample is not None else (read_csv(root / cfg.test_csv, cfg) if (root / cfg.test_csv).is_file()
                                                  else None)
    if listing is not None:
        name = cfg.sample_submission if sample is not None else cfg.test_csv
        id_col = cfg.id_col if cfg.id_col in listing.columns else listing.columns[0]
        ids = listing[id_col].str.strip().tolist()
        check_ids(ids, name)
        paths = resolve_images(root, ids, cfg.test_dir, (*TEST_DIRS, *nested_dirs(root, "test")), f"ids of {name}")
        return pd.DataFrame({"id": ids, "path": paths}), sample, (sample_path if sample is not None else None)
    for d in ([root / cfg.test_dir] if cfg.test_dir else [root / t for t in TEST_DIRS[:2]]):
        if d.is_dir():
            files = [check_name(str(d / f), root) for f in sorted(os.listdir(d)) if is_image(f) and (d / f).is_file()]
            if files:
                return pd.DataFrame({"id": [os.path.basename(f) for f in files], "path": files}), None, None
    return None, None, None


def read_test_set(root: str | Path, cfg: DataConfig, task: Task, classes: list[str]
                  ) -> tuple[pd.DataFrame, SubmissionFormat | None, Path | None]:
    """The test set of a competition folder exactly as training reads it (the sample submission's ids, order and
    format, else test.csv, else a test folder), for a trained model's ``task`` and ``classes``; the training table
    is not read, so a hidden test set that replaces the public one is enough. Returns (id/path table, format, sample
    path); a folder without a test set is a one-line error."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise PodiumError(f"Data folder {root} does not exist.")
    test, sample, sample_path = _read_test(root, cfg)
    if test is None:
        raise PodiumError(f"{root} has no test images ({cfg.sample_submission}, {cfg.test_csv} or a test folder); "
                          "pass --images DIR to predict a folder of images.")
    fmt = None
    if sample is not None:
        id_col = cfg.id_col if cfg.id_col in sample.columns else sample.columns[0]
        fmt = infer_format(sample, id_col, task, list(classes), cfg.sample_submission)
    return test, fmt, sample_path


def class_names(root: Path, classes: tuple[str, ...], notes: list[str]) -> dict[str, str]:
    """Names of the labels from a JSON map beside the CSV (Cassava's ``label_num_to_disease_map.json``: {"0": "Cassava
    Bacterial Blight (CBB)", ...}) when it names every class; shown by inspect and the logs, while the submission
    keeps the labels themselves."""
    for path in sorted(root.glob("label*map*.json")):
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(mapping, dict) and all(str(c) in mapping for c in classes):
            notes.append(f"class names from {path.name} (shown by inspect and the logs; the submission keeps "
                         f"{', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}).")
            return {str(c): str(mapping[str(c)]) for c in classes}
    return {}


def _train_paths(root: Path, ids: list[str], raw: RawLabels, cfg: DataConfig, notes: list[str]) -> list[str]:
    """Each training id's image: in an image folder beside the CSV (``TRAIN_DIRS``, ``data.image_dir``, or one two
    levels down), else in a folder per label inside one (Paddy Doctor's ``train_images/<label>/<image_id>``)."""
    candidates = (*TRAIN_DIRS, *nested_dirs(root, "train"))
    try:
        return resolve_images(root, ids, cfg.image_dir, candidates, f"ids of {raw.source or cfg.train_csv}")
    except PodiumError:
        if raw.lists is None or any(len(labels) != 1 for labels in raw.lists):
            raise
        folders = [root / cfg.image_dir] if cfg.image_dir else [root / c for c in candidates if (root / c).is_dir()]
        for folder in folders:
            paths = _in_class_folders(folder, ids, [labels[0] for labels in raw.lists])
            if paths is not None:
                notes.append(f"images found in a folder per label: {folder.relative_to(root).as_posix()}/<label>/; "
                             "data.image_dir=... overrides.")
                return paths
        raise


def _in_class_folders(folder: Path, ids: list[str], labels: list[str]) -> list[str] | None:
    """Each id's file in ``folder/<its label>/``, or None when any is missing."""
    indexes: dict[str, FolderIndex | None] = {}
    paths = []
    for id_, label in zip(ids, labels):
        if label not in indexes:
            indexes[label] = FolderIndex.of(folder / label) if (folder / label).is_dir() else None
        index = indexes[label]
        hit = None if index is None else index.find(id_.replace("\\", "/").rsplit("/", 1)[-1])
        if hit is None:
            return None
        paths.append(hit)
    return paths


def load_competition(root: str | Path, cfg: DataConfig, check: bool = True) -> Competition:
    """Read a competition folder: detect the layout and task, resolve every image, check them, read the test set."""
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise PodiumError(f"{root} is a file; give the competition folder that holds train.csv or class folders.")
    if not root.is_dir():
        raise PodiumError(f"Data folder {root} does not exist.")
    if cfg.task != "auto" and cfg.task not in TASKS:
        TASKS.get(cfg.task)  # raises with the list of tasks
    layout_name = detect_layout(root, cfg)
    train, raw = LAYOUTS.get(layout_name).read(root, cfg)
    task, classes, targets = _targets(raw, cfg)
    notes = [*raw.notes, *(raw.roles.notes if raw.roles is not None else ())]
    if "path" not in train.columns:
        train["path"] = _train_paths(root, train["id"].tolist(), raw, cfg, notes)
    test, sample, sample_path = _read_test(root, cfg)
    fmt, metric = None, ("", "")
    if sample is not None:
        id_col = cfg.id_col if cfg.id_col in sample.columns else sample.columns[0]
        fmt = infer_format(sample, id_col, task, list(classes), cfg.sample_submission)
        metric = implied_metric(sample, fmt, task, cfg.sample_submission)
    names = class_names(root, classes, notes)
    comp = Competition(root, layout_name, task, classes, train.reset_index(drop=True), targets, test, fmt,
                       sample_path, tuple(notes), raw.roles, names, *metric)
    if check and cfg.check_images:
        comp, _, _ = screen_images(comp, cfg.skip_bad)
    return comp


def scored_by(comp: Competition, configured: str) -> str:
    """The metric a run on ``comp`` is scored by, as ``cv.metric`` names one: the configured metric, else with
    ``auto`` the one the sample implies (``Competition.metric``), else ``auto`` (the task's own)."""
    return configured if configured != "auto" else (comp.metric or "auto")


def inferred_line(comp: Competition, task: Task, configured_task: str, configured_metric: str) -> str:
    """What podium inferred of the task and metric, with their overrides: ``ordinal task (integer grades in
    diagnosis; data.task=multiclass overrides), metric mean_auc (inferred from ...; cv.metric=... overrides)``."""
    metric = metric_words(comp, task.primary, configured_metric)
    return f"{task.name} task{task_words(comp, task, configured_task)}, {metric}"


def task_words(comp: Competition, task: Task, configured: str) -> str:
    """`` (integer grades in diagnosis; data.task=multiclass overrides)`` where ``data.task=auto`` read grades as a
    task that ranks its classes (``ColumnRoles.grades``), else ''."""
    if configured != "auto" or comp.roles is None or not comp.roles.grades or not task.ordered:
        return ""
    return f" (integer grades in {comp.roles.labels[0]}; data.task=multiclass overrides)"


def metric_words(comp: Competition, primary: str, configured: str) -> str:
    """``metric NAME`` and where it comes from: ``cv.metric``, the sample (``Competition.metric``) or the task."""
    if configured != "auto":
        return f"metric {primary} (set by cv.metric)"
    if comp.metric:
        return f"metric {primary} (inferred from {comp.metric_why}; cv.metric=... overrides)"
    return f"metric {primary} (cv.metric=... overrides; the {comp.task.name} task's own)"


def screen_images(comp: Competition, skip_bad: bool, strict: bool = True, sink: PixelSink | None = None
                  ) -> tuple[Competition, pd.DataFrame, list[str]]:
    """Check every training and test image in one parallel, cached pass and act on the unusable ones.

    All bad files are named in one error. With ``skip_bad`` the bad training images are dropped instead (returned
    as ``dropped``); bad test images always stop, because the submission needs a row for every test id. With
    ``strict=False`` (``podium inspect``) nothing stops: bad training and test images are dropped and listed. Returns
    the competition, the check table of the images kept (split, id, then ``checks.COLUMNS``) and the dropped files.
    """
    parts = [comp.train.assign(split="train")[["split", "id", "path"]]]
    if comp.test is not None:
        parts.append(comp.test.assign(split="test")[["split", "id", "path"]])
    listing = pd.concat(parts, ignore_index=True)
    table = check_files(listing["path"].tolist(), sink=sink)  # sink: the coming run's cache, filled by the same decode
    table.insert(0, "id", listing["id"].to_numpy())
    table.insert(0, "split", listing["split"].to_numpy())
    bad = table["error"].notna().to_numpy()
    if not bad.any():
        return comp, table, []
    shown = [f"{os.path.relpath(p, comp.root)} ({why})" for p, why in zip(table["path"][bad], table["error"][bad])]
    bad_test = bad & (table["split"] == "test").to_numpy()
    if strict and (not skip_bad or bad_test.any()):
        how = ("Replace or remove them (and their CSV rows), or pass --skip-bad (data.skip_bad=true) to drop bad "
               "training images" if not bad_test.any() else
               "Replace them: test images cannot be skipped, the submission needs a row for every test id")
        raise PodiumError(f"{int(bad.sum())} image(s) cannot be used: {list_some(shown)}. {how}.")
    keep = ~bad[: len(comp.train)]
    test = None if comp.test is None else comp.test[~bad[len(comp.train):]].reset_index(drop=True)
    comp = dataclasses.replace(comp, train=comp.train[keep].reset_index(drop=True), targets=comp.targets[keep],
                               test=test)
    return comp, table[~bad].reset_index(drop=True), shown
