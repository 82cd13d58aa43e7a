"""The report's plots: plain functions from arrays and tables to a matplotlib Figure (Agg backend, no display), and
``to_png`` to embed one. Nothing here reads files: ``podium.reporting.sections`` reads the run folder through Run."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot: never a window, never a display server

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from sklearn.metrics import confusion_matrix as sk_confusion  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

if TYPE_CHECKING:
    from podium.tasks.thresholds import DecisionCurve

WIDTH = 6.4  # inches; the page shows plots at most ~900 px wide
DPI = 100


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def class_counts(classes: Sequence[str], counts: Sequence[int]) -> Figure:
    """Horizontal bars: images (rows carrying the class, for multilabel) per class."""
    fig, ax = plt.subplots(figsize=(WIDTH, 0.35 * len(classes) + 1.0))
    y = np.arange(len(classes))
    ax.barh(y, counts, color="#4c72b0")
    ax.set_yticks(y, [str(c) for c in classes])
    ax.invert_yaxis()
    for k, n in enumerate(counts):
        ax.text(n, k, f" {n}", va="center", fontsize=9)
    ax.set_xlabel("images")
    ax.set_title("Training images per class")
    ax.margins(x=0.12)
    return fig


def image_sizes(widths: np.ndarray, heights: np.ndarray) -> Figure:
    """Scatter of image width against height (a sample of the training images)."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, WIDTH * 0.55))
    ax.scatter(widths, heights, s=8, alpha=0.4, color="#4c72b0")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"Image sizes ({len(widths)} images)")
    return fig


def lr_schedule(logs: dict[int, pd.DataFrame]) -> Figure:
    """The learning rate of every optimiser update, per fold (from fold{k}/lr.csv): the head's, and dashed the
    backbone's where it differs (a lower backbone LR, and 0 during a head-only warm-up)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    for fold, df in sorted(logs.items()):
        line, = ax.plot(df["step"], df["lr"], label=f"fold {fold}" + (" head" if "backbone_lr" in df else ""), lw=1.5)
        if "backbone_lr" in df and not np.allclose(df["backbone_lr"], df["lr"]):
            ax.plot(df["step"], df["backbone_lr"], ls="--", lw=1.2, color=line.get_color(),
                    label=f"fold {fold} backbone")
        for _, first in df.groupby("epoch")["step"].min().items():
            ax.axvline(first, color="#dddddd", lw=0.6, zorder=0)
    ax.set_xlabel("optimiser update (grey lines: epoch starts)")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule (as used)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.legend(fontsize=8)
    return fig


def training_curves(logs: dict[int, pd.DataFrame], metric: str) -> Figure:
    """Per fold: train and validation loss (left) and the validation ``metric`` (right) per epoch; the best epoch
    of each fold is marked."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(WIDTH * 1.5, 3.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (fold, df) in enumerate(sorted(logs.items())):
        c = colors[k % len(colors)]
        ax_loss.plot(df["epoch"], df["train_loss"], "--", color=c, marker=".", label=f"fold {fold} train")
        ax_loss.plot(df["epoch"], df["val_loss"], "-", color=c, marker=".", label=f"fold {fold} val")
        ax_metric.plot(df["epoch"], df[metric], "-", color=c, marker=".", label=f"fold {fold}")
        best = df[df["best"].astype(str) == "True"] if "best" in df else df.iloc[:0]
        if len(best):
            last = best.iloc[-1]
            ax_metric.scatter([last["epoch"]], [last[metric]], s=80, facecolors="none", edgecolors=c)
    ax_loss.set_title("Loss")
    ax_metric.set_title(f"Validation {metric} (circle: best epoch)")
    for ax in (ax_loss, ax_metric):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def confusion_matrix(y: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (each row: where the images of a true class went), with counts."""
    n = len(classes)
    cm = sk_confusion(y, pred, labels=list(range(n)))
    norm = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
    side = min(max(3.5, 0.55 * n + 2), 9)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(c) for c in classes])
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (normalised per true class)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def roc_curves(truth: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> Figure:
    """One-vs-rest ROC curve per class (0/1 ``truth`` and probabilities, both N x C), with each class's AUC."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, WIDTH * 0.7))
    for c, name in enumerate(classes):
        t = truth[:, c]
        if 0 < t.sum() < len(t):
            fpr, tpr, _ = roc_curve(t, probs[:, c])
            ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {roc_auc_score(t, probs[:, c]):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC per class (out-of-fold)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def decision_curves(curves: Sequence[DecisionCurve], name: str) -> Figure:
    """Each fitted decision's metric as it moves with the others kept (``podium.tasks.thresholds.DecisionCurve``), one
    panel per decision: the value in use dashed red, the plain decoding's dotted grey (where it is in the range)."""
    cols = min(len(curves), 3)
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH * (0.8 if cols == 1 else 1.5), 2.6 * rows + 0.4),
                             squeeze=False)
    for ax, c in zip(axes.flat, curves):
        ax.plot(c.values, c.scores, lw=1.5, marker="." if len(c.values) <= 60 else None, ms=3)
        if c.plain is not None and np.min(c.values) <= c.plain <= np.max(c.values):  # far away, it squeezes the curve
            ax.axvline(c.plain, color="#888888", ls=":", lw=1.2, label=f"plain {c.plain:g}")
        ax.axvline(c.chosen, color="#c44e52", ls="--", lw=1.5, label=f"in use {c.chosen:.3f}")
        ax.set_title(c.parameter, fontsize=9)
        ax.set_ylabel(c.metric, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    what = f"the {name}" if len(curves) == 1 else f"each {name.rstrip('s')} (the others kept)"
    fig.suptitle(f"OOF score against {what}", fontsize=10)
    fig.tight_layout()
    return fig


def score_distribution(score: np.ndarray, truth: np.ndarray, classes: Sequence[str], cuts: Sequence[float],
                       plain: Sequence[float], score_name: str, bins: int = 40) -> Figure:
    """The continuous score the decisions cut, one histogram row per true class (each row scaled to its own
    peak, so rare classes show), with the cuts in use dashed red and the plain decoding's dotted grey."""
    n = len(classes)
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH, 0.75 * n + 1.1), sharex=True, squeeze=False)
    # bins over the whole drawn range (scores and cuts), so a narrow score range still shows as bars
    lo, hi = float(min(np.min(score), *cuts, *plain)), float(max(np.max(score), *cuts, *plain))
    edges = np.linspace(lo, hi + 1e-9, bins + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ax in enumerate(axes[:, 0]):
        rows = score[truth == k]
        counts, _ = np.histogram(rows, bins=edges)
        ax.bar(edges[:-1], counts / max(counts.max(), 1), width=np.diff(edges), align="edge",
               color=colors[k % len(colors)], alpha=0.75)
        for x in plain:
            ax.axvline(x, color="#888888", ls=":", lw=1)
        for x in cuts:
            ax.axvline(x, color="#c44e52", ls="--", lw=1.3)
        ax.set_yticks([])
        ax.set_ylabel(f"{classes[k]}\n({len(rows)})", rotation=0, ha="right", va="center", fontsize=8)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    axes[-1, 0].set_xlabel(f"{score_name}; red dashed: in use, grey dotted: plain decoding")
    axes[0, 0].set_title(f"OOF {score_name} per true class")
    fig.tight_layout(h_pad=0.2)
    return fig


def image_grid(images: Sequence[np.ndarray], captions: Sequence[str], cols: int = 6,
               colors: Sequence[str] | None = None, thumb: int = 160) -> Image.Image:
    """HxWx3 uint8 RGB images in a grid of ``thumb``-pixel tiles, each under its caption (lines split at newlines,
    coloured by ``colors`` when given). Drawn with Pillow: a grid of dozens of images in milliseconds."""
    font = ImageFont.load_default(size=12)
    lines = max((len(c.split("\n")) for c in captions), default=1)
    cap_h, pad = 15 * lines + 4, 6
    rows = max(1, -(-len(images) // cols))
    sheet = Image.new("RGB", (cols * (thumb + pad) + pad, rows * (thumb + cap_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (image, caption) in enumerate(zip(images, captions)):
        r, c = divmod(k, cols)
        x, y = pad + c * (thumb + pad), pad + r * (thumb + cap_h + pad)
        for j, line in enumerate(caption.split("\n")):
            draw.text((x, y + 15 * j), _fit(draw, line, font, thumb), fill=(colors[k] if colors else "black"),
                      font=font)
        tile = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
        scale = thumb / max(tile.size)  # small images are enlarged too, so every tile has the same size
        tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))),
                           Image.Resampling.NEAREST if scale > 2 else Image.Resampling.LANCZOS)
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y + cap_h + (thumb - tile.height) // 2))
    return sheet


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def grid_png(images: Sequence[np.ndarray], captions: Sequence[str], **kwargs: object) -> bytes:
    """``image_grid`` as PNG bytes."""
    buf = io.BytesIO()
    image_grid(images, captions, **kwargs).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
