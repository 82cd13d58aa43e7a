"""``podium inspect``: the checks ``podium train`` runs, reported instead of acted on, plus a contact sheet.

Writes ``inspect.json`` (the summary), ``duplicates.csv`` and ``contact_sheet.png`` (images after ``data.preprocess``)
into the output folder.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.text import Text

from podium.config import PodiumConfig
from podium.core.console import Reporter
from podium.core.errors import list_some
from podium.core.io import check_folder, write_json, write_with
from podium.core.progress import track
from podium.data.folders.files import ignored_files
from podium.data.folders.ingest import Competition, metric_words, scored_by, task_words
from podium.data.integrity import Integrity, prepare
from podium.data.pixels.image_ops import ImageOps, image_ops
from podium.tasks.metrics import resolve_metric

THUMB = 112
PER_CLASS = 6


def _counts(values: list[str], limit: int = 50) -> dict[str, int]:
    return dict(Counter(values).most_common(limit))


def summarize(comp: Competition, integ: Integrity, near_distance: int) -> dict[str, Any]:
    """The inspection summary as a JSON-ready dict."""
    table = integ.table
    dups = integ.duplicates
    clusters = []
    for c, g in dups.groupby("cluster", sort=True):
        clusters.append({"cluster": int(c), "kind": g["kind"].iloc[0], "ids": g["id"].tolist(),
                         "splits": g["split"].tolist(), "labels": g["label"].tolist(),
                         "conflict": bool(g["conflict"].iloc[0])})
    kinds = Counter(c["kind"] for c in clusters)
    out: dict[str, Any] = {
        "data_dir": str(comp.root),
        "layout": comp.layout,
        "task": comp.task.name,
        "classes": list(comp.classes),
        "train_images": len(comp.train),
        "test_images": 0 if comp.test is None else len(comp.test),
        "class_counts": dict(zip(comp.classes, comp.task.counts(comp.targets, len(comp.classes)).tolist())),
        "label_combinations": _counts(comp.label_strings()),
        "bad_files": integ.dropped_bad,
        "near_distance": near_distance,
        "duplicates": {"clusters": len(clusters), "exact_clusters": kinds.get("exact", 0),
                       "near_clusters": kinds.get("near", 0), "images": int(len(dups)), "list": clusters},
        "label_conflicts": integ.conflicts,
        "test_overlap": integ.overlap.to_dict(orient="records"),
    }
    if "group" in comp.train.columns:
        out["user_groups"] = int(comp.train["group"].nunique())
    used = comp.train["path"].tolist() + ([] if comp.test is None else comp.test["path"].tolist())
    out["ignored_files"] = ignored_files(comp.root, used)  # AppleDouble, hidden, not images: never read
    if table is not None:
        sizes = [f"{w}x{h}" for w, h in zip(table["width"], table["height"])]
        out["image_sizes"] = {"distinct": len(set(sizes)), "most_common": _counts(sizes, 10),
                              "min_side": int(np.minimum(table["width"], table["height"]).min()),
                              "max_side": int(np.maximum(table["width"], table["height"]).max())}
        # every mode is decoded to 8-bit RGB, identically in training and inference (podium.data.pixels.images)
        out["color_modes"] = _counts(table["mode"].tolist())
    return out


def contact_sheet(comp: Competition, path: Path, per_class: int = PER_CLASS, seed: int = 0,
                  ops: ImageOps | None = None) -> Path:
    """A PNG grid: one row per class with up to ``per_class`` of its training images (random, seeded), after the
    image ops ``ops`` (``data.preprocess``), so the user sees what the model will see."""
    ops = ops or ImageOps()
    rng = np.random.default_rng(seed)
    label_w = 160
    rows = []
    onehot = comp.task.onehot(comp.targets, len(comp.classes))
    for c, name in track(list(enumerate(comp.classes)), len(comp.classes), "contact sheet"):
        members = np.flatnonzero(onehot[:, c])
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        row = np.full((THUMB, label_w + per_class * THUMB, 3), 255, np.uint8)
        cv2.putText(row, str(name)[:18], (6, THUMB // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(row, f"n={len(members)}", (6, THUMB // 2 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 80, 80), 1,
                    cv2.LINE_AA)
        for k, i in enumerate(chosen):
            img = cv2.resize(ops.read(comp.train["path"].iloc[int(i)]), (THUMB - 4, THUMB - 4),
                             interpolation=cv2.INTER_AREA)
            x = label_w + k * THUMB + 2
            row[2:THUMB - 2, x:x + THUMB - 4] = img[:, :, ::-1]  # RGB -> BGR for cv2
        rows.append(row)
    ok, png = cv2.imencode(".png", np.concatenate(rows, axis=0))
    if not ok:
        raise RuntimeError("cv2 could not encode the contact sheet")
    return write_with(path, lambda tmp: tmp.write_bytes(png.tobytes()))


def decided(comp: Competition, cfg: PodiumConfig) -> list[str]:
    """What podium decided about the folder, each with the override that changes it: layout, task, label, group
    and metadata columns, metric, and the notes ingest made where the folder left a choice open."""
    metric = resolve_metric(comp.task, scored_by(comp, cfg.cv.metric)).primary  # auto: the sample's, else the task's
    lines = [f"layout {comp.layout} (data.layout=... overrides)",
             f"task {comp.task.name}{task_words(comp, comp.task, cfg.data.task) or ' (data.task=... overrides)'}"]
    roles = comp.roles
    if roles is not None:
        lines.append(f"label column{'s' if len(roles.labels) > 1 else ''} {', '.join(roles.labels)} "
                     "(data.label_cols=... overrides)")
        lines.append(f"group column {roles.group} (data.group_col=... overrides)" if roles.group else
                     "no group column (data.group_col=COLUMN sets one)")
        if roles.metadata or roles.restating:
            lines.append(f"ignored for training: {', '.join([*roles.metadata, *roles.restating])} "
                         "(data.ignore_cols=... to silence)")
    lines.append(metric_words(comp, metric, cfg.cv.metric))
    return lines + list(comp.notes)


def _print(summary: dict[str, Any], out_dir: Path, seconds: float, reporter: Reporter) -> None:
    s = summary
    reporter.print(Text.assemble((s["data_dir"], "bold"), f": {s['layout']} layout, {s['task']} task, "
                                 f"{s['train_images']} training and {s['test_images']} test images, checked in "
                                 f"{seconds:.1f} s"))
    for line in s.get("decided", []):
        reporter.print(f"decided: {line}")
    _print_labels(s, reporter)
    _print_duplicates(s, reporter)
    _print_files(s, reporter)
    reporter.print(f"wrote {out_dir / 'inspect.json'}, duplicates.csv, contact_sheet.png")


def _print_labels(s: dict[str, Any], reporter: Reporter) -> None:
    """Classes, label combinations, image sizes and colour modes."""
    names = s.get("class_names", {})
    reporter.print("classes: " + ", ".join(f"{c}{' (' + names[c] + ')' if c in names else ''} {n}"
                                           for c, n in s["class_counts"].items()))
    if set(s["label_combinations"]) - set(s["class_counts"]):  # rows with several (or no) labels
        reporter.print("label combinations: " + ", ".join(
            f"{c or '(none)'} {n}" for c, n in list(s["label_combinations"].items())[:12]))
    if "image_sizes" in s:
        sizes = s["image_sizes"]
        reporter.print(f"image sizes: {sizes['distinct']} distinct, sides {sizes['min_side']}..{sizes['max_side']} px,"
                       f" most common {', '.join(f'{k} ({v})' for k, v in list(sizes['most_common'].items())[:3])}; "
                       f"colour modes {', '.join(f'{k} {v}' for k, v in s['color_modes'].items())} (all read as RGB)")


def _print_duplicates(s: dict[str, Any], reporter: Reporter) -> None:
    """Duplicate clusters (the first 20), label conflicts (and where suspect labels come from: a trained run) and test
    images that duplicate training images."""
    d = s["duplicates"]
    reporter.print(f"duplicates (pHash distance <= {s['near_distance']}): {d['clusters']} cluster(s), "
                   f"{d['exact_clusters']} byte-identical, {d['near_clusters']} near, {d['images']} images")
    for c in d["list"][:20]:
        members = ", ".join(f"{i} ({sp}{': ' + lab if lab else ''})" for i, sp, lab in
                            zip(c["ids"], c["splits"], c["labels"]))
        reporter.print(f"  {c['kind']:5s} {members}{'  CONFLICT' if c['conflict'] else ''}")
    if d["clusters"] > 20:
        reporter.print(f"  ... {d['clusters'] - 20} more in duplicates.csv")
    reporter.print(f"label conflicts: {len(s['label_conflicts'])}"
                   + "".join(f"\n  {' + '.join(c['ids'])}: {' | '.join(c['labels'])}"
                             for c in s["label_conflicts"][:10]))
    reporter.print("suspect labels: train once, then `podium suspects RUN` lists the labels the OOF predictions "
                   "contradict")
    reporter.print(f"test images duplicating training images: {len(s['test_overlap'])}"
                   + "".join(f"\n  {o['test_id']} = {o['train_ids']} ({o['train_labels']})"
                             for o in s["test_overlap"][:10]))


def _print_files(s: dict[str, Any], reporter: Reporter) -> None:
    """Bad files, and the files never read by kind with examples."""
    reporter.print(f"bad files: {len(s['bad_files'])}" + (f": {list_some(s['bad_files'])}"
                                                          if s["bad_files"] else ""))
    ignored = s["ignored_files"]
    reporter.print(f"ignored files (never read): {sum(k['count'] for k in ignored.values())}" + "".join(
        f"\n  {kind} {k['count']}: {', '.join(k['examples'])}"
        + (f" (and {k['count'] - len(k['examples'])} more)" if k["count"] > len(k["examples"]) else "")
        for kind, k in ignored.items()))


def inspect_data(data_dir: str | Path, cfg: PodiumConfig, out_dir: str | Path | None = None,
                 reporter: Reporter | None = None) -> dict[str, Any]:
    """Run every pre-training check on ``data_dir`` and report it; unreadable images are listed, not fatal.

    Writes ``inspect.json``, ``duplicates.csv`` and ``contact_sheet.png`` into ``out_dir`` (default:
    ``<run.root>/inspect-<data folder name>``) and returns the summary.
    """
    t0 = time.time()
    out = check_folder(out_dir, "--out") if out_dir else check_folder(cfg.run.root, "run.root")
    comp, integ = prepare(data_dir, cfg.data, strict=False)
    out = out if out_dir else check_folder(out / f"inspect-{comp.root.name}", "run.root")
    summary = summarize(comp, integ, cfg.data.near_distance)
    summary["decided"] = decided(comp, cfg)
    if comp.class_names:
        summary["class_names"] = comp.class_names
    if comp.roles is not None:
        summary["columns"] = comp.roles.summary()
    seconds = time.time() - t0
    summary["check_seconds"] = round(seconds, 3)
    integ.write_duplicates(out)
    contact_sheet(comp, out / "contact_sheet.png", ops=image_ops(cfg.data))
    write_json(out / "inspect.json", summary)
    _print(summary, out, seconds, reporter or Reporter())
    return summary
