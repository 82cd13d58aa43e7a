"""The report's "Suspect labels" section: the training labels the run's own out-of-fold predictions contradict
(suspects.csv, read through ``Run.suspects``; written by training with ``podium.tasks.suspects``), shown as
thumbnails of the worst ones, the share of suspects per class, the duplicate clusters whose labels disagree, and how
to act on them in a next run (``data.suspects``, ``data.suspect_action``)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from podium.reporting import plots
from podium.reporting.html import img, note, table
from podium.reporting.sections import Inputs, short

TOO_MANY = 0.25  # a larger share of flagged labels says more about the model than about the labels
MISSING = ("This run has no suspects.csv: it finished before podium wrote suspect labels, or it has not finished "
           "(`podium train` again writes it).")


def _given(label: object) -> str:
    """A label as a caption shows it (a multilabel row without any class is ``(none)``)."""
    return str(label) if str(label) else "(none)"


def too_many(flagged: int, rows: int) -> str:
    """A warning when ``flagged`` of ``rows`` labels is more than label noise usually explains, else ''."""
    share = flagged / max(rows, 1)
    if share <= TOO_MANY:
        return ""
    return (f"{share:.0%} of the labels are flagged, more than label noise usually explains: the model is probably "
            "too weak to judge them (a run at chance level flags labels at random); train a stronger run before "
            "acting on these.")


def _thumbnails(inp: Inputs, rows: pd.DataFrame) -> str:
    """The top suspects as captioned thumbnails, or as a table when the images cannot be read."""
    if rows.empty:
        return ""
    shown = rows[rows["id"].astype(str).isin(inp.paths or {})]
    if shown.empty:  # the data folder is gone (or moved): the rows without their pictures
        return note(inp.paths_note or "The suspects' images were not found.") + table(rows.drop(columns=["source"]))
    images = [inp.image(i) for i in shown["id"]]
    captions = [f"{short(r.id)}\ngiven {_given(r.given)}\nsuggested {_given(r.suggested)}\nquality {r.quality:.2f}"
                for r in shown.itertuples()]
    return (note(inp.ops_note) if inp.ops_note else "") + img(
        plots.grid_png(images, captions, cols=6, colors=["#b22222"] * len(images)), "suspect labels")


def per_class(inp: Inputs, suspects: pd.DataFrame) -> pd.DataFrame:
    """For each class: the OOF images given that label, how many of them are suspects, and the share."""
    truth = inp.truth()
    flagged = inp.oof["id"].astype(str).isin(set(suspects["id"].astype(str))).to_numpy()
    images, hits = truth.sum(axis=0).astype(int), truth[flagged].sum(axis=0).astype(int)
    share = np.divide(hits, images, out=np.full(len(images), np.nan), where=images > 0)
    return pd.DataFrame({"class": inp.shown, "images": images, "suspects": hits, "share": share})


def _conflicts(rows: pd.DataFrame) -> str:
    """The members of duplicate clusters whose labels disagree (no model judged them)."""
    if rows.empty:
        return "<h3>Duplicate conflicts</h3><p>No duplicate cluster has disagreeing labels.</p>"
    return (f"<h3>Duplicate conflicts ({len(rows)} images: the same picture with different labels)</h3>"
            + table(rows[["id", "given", "source"]]))


def _how_to_act(inp: Inputs) -> str:
    """What a next run can do with these suspects, and when not to trust them."""
    return (f"<p>To act on them, train again with <code>data.suspects={html.escape(str(inp.run.path))} "
            "data.suspect_action=drop|relabel|soft|weight</code> (drop the suspects from training, relabel them "
            "with the suggested label, train on the OOF probabilities as soft labels, or down-weight them by their "
            "quality; validation keeps the given labels). Look at them first: the suspects are only as good as the "
            "model, and a run at chance level flags labels at random.</p>")


def suspect_labels(inp: Inputs, count: int = 18) -> str:
    """The worst suspect labels as thumbnails, the share per class, the duplicate conflicts, how to act on them."""
    table_ = inp.run.suspects()
    if table_ is None or inp.oof is None:
        return note(MISSING)
    oof_rows, clash = table_[table_["source"] == "oof"], table_[table_["source"] != "oof"]
    share = len(oof_rows) / max(len(inp.oof), 1)
    parts = [f"<p>{len(oof_rows)} of {len(inp.oof)} out-of-fold labels ({share:.1%}) are contradicted by the run's "
             "own out-of-fold predictions (confident learning, cleanlab); worst first, quality in [0, 1] with low "
             f"meaning likely wrong. All of them are in {html.escape(str(inp.run.path / 'suspects.csv'))}.</p>"]
    if warning := too_many(len(oof_rows), len(inp.oof)):
        parts.append(note(warning))
    parts.append(_thumbnails(inp, oof_rows.head(count)) if len(oof_rows)
                 else "<p>No label is contradicted by the out-of-fold predictions.</p>")
    parts += ["<h3>Suspects per class (of the out-of-fold images given that label)</h3>",
              table(per_class(inp, oof_rows)), _conflicts(clash), _how_to_act(inp)]
    return "".join(parts)
