"""The report's sections, each built from the run folder alone (read through ``Run``) and, for the pictures, the
run's data folder when it is still there, read through the run's image ops (``data.preprocess``) so the pictures are
what the model saw. A section that cannot be built becomes a one-line note; the rest of the report still appears.
``podium.reporting.decisions`` has the decisions section, ``podium.reporting.ensembles`` an ensemble folder's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from podium.config import PodiumConfig, dump_yaml, shown_precision
from podium.core.errors import PodiumError
from podium.data.folders.ingest import load_competition
from podium.data.pixels.image_ops import ImageOps, image_ops, ops_of
from podium.data.training.dataset import evaluation_dataset, training_dataset
from podium.reporting import plots
from podium.reporting.gradcam import Unsupported, grad_cam
from podium.reporting.html import img, key_values, note, pre, table
from podium.runs.checkpoint import Checkpoint
from podium.runs.run import Run
from podium.tasks.crossfit import HonestScore
from podium.tasks.task import Task, get_task

MAX_SIZES = 1000  # image headers read for the size plot


@dataclass
class Inputs:
    """What every section reads: the run's record, its OOF predictions (when finished), the image paths and the
    image ops that show them as the model saw them. ``model`` says what was trained (the page's subtitle)."""

    run: Run
    cfg: PodiumConfig
    info: dict[str, Any]
    task: Task
    classes: list[str]
    oof: pd.DataFrame | None
    paths: dict[str, str] | None  # id -> image path, None when the data folder is gone
    paths_note: str = ""
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    ops: ImageOps = field(default_factory=ImageOps)
    ops_note: str = ""  # why the images are shown without the model's image ops, when they are
    model: str = ""

    @property
    def shown(self) -> list[str]:
        """The classes as people read them: ``3 (Cassava Mosaic Disease (CMD))`` where the data folder names its
        labels (run.json's ``class_names``), else the classes themselves (the submission's spelling)."""
        names = self.info.get("class_names") or {}
        return [f"{c} ({names[c]})" if c in names else c for c in self.classes]

    def checkpoint(self, fold: int) -> Checkpoint:
        """fold ``fold``'s best checkpoint (read once)."""
        if fold not in self.checkpoints:
            self.checkpoints[fold] = self.run.load_best(fold)
        return self.checkpoints[fold]

    def targets(self) -> np.ndarray:
        """The OOF rows' targets in the task's form (class indices, or a 0/1 matrix), from their label strings."""
        known = set(self.classes)
        lists = [[s] if s in known else s.split() for s in self.oof["label"].fillna("").astype(str)]
        return self.task.from_labels(lists, self.classes)

    def truth(self) -> np.ndarray:
        """The OOF rows' targets as a 0/1 matrix (N, C)."""
        return self.task.onehot(self.targets(), len(self.classes))

    def image(self, image_id: str, ops: ImageOps | None = None) -> np.ndarray:
        """The RGB image of a training id after the image ops (``ops``, default the run's): what the model saw."""
        return (self.ops if ops is None else ops).read(self.paths[str(image_id)])


def gather(run: Run, cfg: PodiumConfig | None = None) -> Inputs:
    """Read the run folder (and locate its images) once for all sections; ``cfg``: the config to read the data
    with (default: the run's own)."""
    cfg, info = cfg or run.config, run.info
    task, classes = get_task(info["task"]), list(info["classes"])
    if info.get("metric"):  # the run's cv.metric
        task = task.with_metric(info["metric"])
    try:
        oof = run.oof
    except PodiumError:
        oof = None
    paths, why = None, ""
    try:
        comp = load_competition(run.data_dir, cfg.data, check=False)
        paths = dict(zip(comp.train["id"].astype(str), comp.train["path"].astype(str)))
    except (PodiumError, OSError, KeyError) as e:
        why = f"The data folder {info.get('data_dir')} could not be read ({e}); images are not shown."
    return Inputs(run, cfg, info, task, classes, oof, paths, why, ops=image_ops(cfg.data), model=cfg.model.name)


def short(image_id: object) -> str:
    """An id as a caption shows it: its last path part (folder layouts use the relative path as the id)."""
    return str(image_id).replace("\\", "/").rsplit("/", 1)[-1]


def _images_or_note(inp: Inputs) -> str:
    return note(inp.paths_note) if inp.paths is None else ""


def overview(inp: Inputs) -> str:
    """The run's identity and provenance: data folder, model, scores, commit, device, times."""
    info, cfg = inp.info, inp.cfg
    metrics = run_metrics(inp.run)
    rows: list[tuple[str, object]] = [
        ("run folder", inp.run.path),
        ("status", inp.run.status + (f" ({info['reason']})" if info.get("reason") else "")),
        ("data folder", info.get("data_dir")), ("layout / task", f"{info.get('layout')} / {info.get('task')}"),
        ("classes", f"{len(inp.classes)}: {', '.join(inp.shown[:12])}{' ...' if len(inp.classes) > 12 else ''}"),
        ("model", f"{cfg.model.name} ({cfg.model.pretrained}), "
                  f"{info.get('img_size') or 'x'.join(map(str, cfg.model.img_size)) or 'default'} px"),
        ("folds / epochs", f"{cfg.cv.folds} / {cfg.train.epochs}"),
    ]
    if metrics:
        beside = HonestScore.from_fields(metrics).beside()  # honest and in-sample side by side
        rows.append(("CV " + metrics["metric"], f"{metrics['cv_score']:.4f} ({beside + '; ' if beside else ''}"
                                                f"without TTA {metrics.get('cv_score_no_tta', float('nan')):.4f})"))
    for what, src in (info.get("sources") or {}).items():  # soft labels, pseudo-labels, teacher: side by side
        score = "" if src.get("cv_score") is None else f": CV {src['metric']} {src['cv_score']:.4f}"
        rows.append((f"{what.replace('_', ' ')} from", f"{src['path']}{score}"))
    rows += [("git commit", info.get("git_commit") or "not recorded"),
             ("device", f"{info.get('device', 'unknown')} {shown_precision(info.get('precision', ''))}".strip()),
             ("host", info.get("host", "")), ("started", info.get("started", "")),
             ("wall time", f"{info['wall_s']:.0f} s" if "wall_s" in info else "")]
    return key_values(rows)


def data(inp: Inputs) -> str:
    """Counts per class, per fold, image sizes and the duplicate clusters."""
    folds = inp.run.folds_table
    known = set(inp.classes)
    lists = [[s] if s in known else s.split() for s in folds["label"].fillna("").astype(str)]
    onehot = inp.task.onehot(inp.task.from_labels(lists, inp.classes), len(inp.classes))
    parts = [img(plots.to_png(plots.class_counts(inp.shown, onehot.sum(axis=0).tolist())), "class counts")]
    per_fold = pd.DataFrame(
        [[f"fold {k}", int((folds["fold"] == k).sum()), *onehot[folds["fold"].to_numpy() == k].sum(axis=0)]
         for k in sorted(folds["fold"].unique())], columns=["fold", "images", *inp.shown])
    parts += ["<h3>Folds (images per class in each validation fold)</h3>", table(per_fold)]
    if inp.paths is not None:
        ids = list(inp.paths.values())
        sample = np.random.default_rng(0).choice(len(ids), size=min(MAX_SIZES, len(ids)), replace=False)
        sizes = np.array([Image.open(ids[i]).size for i in sample])
        parts.append(img(plots.to_png(plots.image_sizes(sizes[:, 0], sizes[:, 1])), "image sizes"))
    parts.append(_duplicates(inp))
    return "".join(parts)


def _duplicates(inp: Inputs, clusters: int = 6) -> str:
    dups = inp.run.duplicates
    if dups is None:
        return "<h3>Duplicate clusters</h3><p>None found by the integrity checks.</p>"
    out = [f"<h3>Duplicate clusters ({dups['cluster'].nunique()}, all in duplicates.csv)</h3>"]
    out.append(table(dups.head(30)))
    train = dups[(dups["split"] == "train")] if "split" in dups else dups
    if inp.paths is not None and len(train):
        shown = [g for _, g in train.groupby("cluster")][:clusters]
        images, captions = [], []
        for g in shown:
            for _, r in g.head(3).iterrows():
                if str(r["id"]) in inp.paths:
                    images.append(inp.image(r["id"]))
                    captions.append(f"cluster {r['cluster']}: {short(r['id'])}\n{r.get('label', '')}")
        if images:
            out.append(img(plots.grid_png(images, captions, cols=6), "duplicate clusters"))
    return "".join(out)


def augmentations(inp: Inputs, images: int = 4, views: int = 5) -> str:
    """Training images as the model sees them: the evaluation view, then ``views`` augmented draws of each."""
    if inp.paths is None:
        return _images_or_note(inp)
    folds = inp.run.folds_table
    fold0 = inp.run.folds_done()[0] if inp.run.folds_done() else 0
    prep = inp.checkpoint(fold0).preprocessing
    rows = np.random.default_rng(1).choice(len(folds), size=min(images, len(folds)), replace=False)
    ids = folds["id"].astype(str).to_numpy()[rows]
    paths = [inp.paths[i] for i in ids]
    # the checkpoint's data.preprocess ops come first, as in training
    train_ds = training_dataset(paths, None, prep, inp.cfg.aug, inp.cfg.train.seed)
    eval_ds = evaluation_dataset(paths, prep)
    grid, captions = [], []
    for r, image_id in enumerate(ids):
        grid.append(eval_ds.augmented(r)[1])
        captions.append(f"{short(image_id)}\n(evaluation view)")
        for e in range(views):
            grid.append(train_ds.augmented(e * len(paths) + r)[1])
            captions.append(f"epoch {e + 1} draw")
    augs, pre = ", ".join(inp.cfg.aug.ops) or "none", ", ".join(prep.ops) or "none"
    return (f"<p>{prep.size_label} px, resize {prep.resize}; preprocessing: {pre}; augmentations: {augs}.</p>"
            + img(plots.grid_png(grid, captions, cols=views + 1, thumb=150), "augmentation preview"))


def training(inp: Inputs) -> str:
    """The learning-rate schedule actually used and the per-fold training curves."""
    folds = sorted({*inp.run.folds_done(), *range(inp.cfg.cv.folds)})
    lrs = {k: df for k in folds if (df := inp.run.lr_log(k)) is not None}
    logs = {k: df for k in folds if (df := inp.run.fold_log(k)) is not None}
    parts = []
    parts.append(img(plots.to_png(plots.lr_schedule(lrs)), "learning rate") if lrs
                 else note("No fold{k}/lr.csv: this run was made before podium logged the learning rate."))
    if logs:
        parts.append(img(plots.to_png(plots.training_curves(logs, inp.task.primary)), "training curves"))
    return "".join(parts) or note("No epoch has finished yet.")


def run_metrics(run: Run) -> dict[str, Any] | None:
    """metrics.json, or None before the run has finished."""
    try:
        return run.metrics
    except PodiumError:
        return None


def oof_metrics(inp: Inputs) -> str:
    """Overall, per-fold and per-class OOF scores; confusion matrix and ROC curves (the decisions section has the
    threshold and cut-point curves)."""
    metrics = run_metrics(inp.run)
    if metrics is None or inp.oof is None:
        return note("The run has no OOF predictions yet (it did not finish).")
    overall = pd.DataFrame([metrics["overall"]])
    if "overall_in_sample" in metrics:  # a blend: its honest (cross-fitted) scores, and those of the final weights
        overall = pd.DataFrame([{"blend": "honest (cross-fitted)", **metrics["overall"]},
                                {"blend": "in-sample (final weights)", **metrics["overall_in_sample"]}])
    per_class = pd.DataFrame(metrics["per_class"]).T.reset_index(names="class").astype({"support": int})
    parts = ["<h3>Overall</h3>", table(overall)]
    if metrics.get("per_fold"):
        folds = pd.DataFrame(metrics["per_fold"]).drop(columns=["img_size", "epochs_wall_s"], errors="ignore")
        parts += ["<h3>Per fold</h3>", table(folds)]
    parts += ["<h3>Per class</h3>", table(per_class)]
    truth, probs = inp.truth(), inp.oof[inp.classes].to_numpy()
    figures = []
    pred = inp.task.predict(probs, inp.run.decisions)
    if pred.ndim == 1:  # one predicted class per row: a confusion matrix
        figures.append(img(plots.to_png(plots.confusion_matrix(truth.argmax(1), pred, inp.shown)), "confusion"))
    figures.append(img(plots.to_png(plots.roc_curves(truth, probs, inp.shown)), "ROC curves"))
    return "".join(parts) + '<div class="row">' + "".join(f"<div>{f}</div>" for f in figures) + "</div>"


def row_losses(task: Task, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-row loss of OOF probabilities against the 0/1 targets ``truth`` (the task's, ``Task.row_loss``)."""
    return task.row_loss(truth, probs)


def _caption(inp: Inputs, r: int, truth: np.ndarray, probs: np.ndarray, pred: list[str]) -> tuple[str, int]:
    """A top-loss caption and the class to explain: the most wrongly scored class of the row."""
    worst = int(inp.task.worst_class(truth[r:r + 1], probs[r:r + 1])[0])
    label = inp.oof["label"].iloc[r]
    return f"{short(inp.oof['id'].iloc[r])}\ntrue {label or '(none)'}\npred {pred[r]}\n" \
           f"p({inp.shown[worst]}) = {probs[r, worst]:.2f}", worst


def top_losses(inp: Inputs, count: int = 18) -> str:
    """The OOF images the model got most wrong."""
    if inp.oof is None or inp.paths is None:
        return _images_or_note(inp) or note("No OOF predictions yet.")
    truth, probs = inp.truth(), inp.oof[inp.classes].to_numpy()
    pred = inp.task.decode(probs, inp.run.decisions, inp.classes)
    order = np.argsort(-row_losses(inp.task, truth, probs))[:count]
    images = [inp.image(inp.oof["id"].iloc[r]) for r in order]
    captions = [_caption(inp, r, truth, probs, pred)[0] for r in order]
    return ("<p>Out-of-fold images with the highest loss: true label, predicted label, and the probability of the "
            "most wrongly scored class.</p>" + (note(inp.ops_note) if inp.ops_note else "")
            + img(plots.grid_png(images, captions, cols=6, colors=["#b22222"] * len(images)), "top losses"))


def gradcam(inp: Inputs, errors: int = 8, per_class: int = 2, max_classes: int = 8) -> str:
    """Grad-CAM on the top errors (for the class the model wrongly scored) and a few correct images per class (for
    their class), each on the fold model that predicted it out of fold."""
    if inp.oof is None or inp.paths is None:
        return _images_or_note(inp) or note("No OOF predictions yet.")
    truth, probs = inp.truth(), inp.oof[inp.classes].to_numpy()
    pred_labels = inp.task.decode(probs, inp.run.decisions, inp.classes)
    pred = inp.task.onehot(inp.task.predict(probs, inp.run.decisions), len(inp.classes))
    wrong = np.flatnonzero((pred != truth).any(axis=1))
    wrong = wrong[np.argsort(-row_losses(inp.task, truth[wrong], probs[wrong]))][:errors]
    chosen = [(int(r), _caption(inp, r, truth, probs, pred_labels)[1], "error") for r in wrong]
    right = np.flatnonzero((pred == truth).all(axis=1))
    for c in range(min(len(inp.classes), max_classes)):
        rows = right[truth[right, c] == 1]
        rows = rows[np.argsort(-probs[rows, c])][:per_class]
        chosen += [(int(r), c, "correct") for r in rows]
    images, captions, colors = [], [], []
    try:
        for fold, group in pd.DataFrame(chosen, columns=["row", "cls", "kind"]).assign(
                fold=lambda d: inp.oof["fold"].to_numpy()[d["row"]]).groupby("fold", sort=True):
            ckpt = inp.checkpoint(int(fold))
            ops = ops_of(ckpt.preprocessing)  # the fold model's own data.preprocess: explain what it saw
            images += grad_cam(ckpt.build_model(), ckpt.preprocessing,
                               [inp.image(inp.oof["id"].iloc[r], ops) for r in group["row"]], group["cls"].tolist(),
                               task=ckpt.resolved_task(), num_classes=len(inp.classes))
            captions += [f"{k}: {short(inp.oof['id'].iloc[r])}\ntrue {inp.oof['label'].iloc[r] or '(none)'}\n"
                         f"CAM for {inp.shown[c]} (p {probs[r, c]:.2f})"
                         for r, c, k in zip(group["row"], group["cls"], group["kind"])]
            colors += ["#b22222" if k == "error" else "#1a7f37" for k in group["kind"]]
    except Unsupported as e:
        return note(f"Grad-CAM is not supported for {inp.cfg.model.name}: {e}.")
    if not images:
        return note("No OOF image to explain.")
    return (f"<p>Grad-CAM ({len(images)} images: up to {errors} top errors in red, up to {per_class} confident "
            f"correct images per class in green), computed on the fold model that predicted each image.</p>"
            + img(plots.grid_png(images, captions, cols=6, colors=colors), "Grad-CAM"))


def config(inp: Inputs) -> str:
    """The resolved config the run was trained with."""
    return pre(dump_yaml(inp.cfg))
