"""Acting on suspect labels (``data.suspects=RUN``, ``data.suspect_action``): the training labels an earlier run's
own out-of-fold predictions contradict (its suspects.csv, ``podium.tasks.suspects``) are dropped, relabelled,
softened or down-weighted in the next run.

Only training changes. Validation rows keep their given labels and every row stays in its fold, so the new run's
CV is scored on the same labels as the source's and the two compare (a run that dropped its suspects from
validation too would score itself on the rows it finds easy). The source must have used the same folds: a row's
suspicion then comes from a model that never saw that row, and fold k's training rows were judged by models that
never saw fold k's validation rows... except through the other folds' models, the second-order leak soft labels
share (docs/RECIPES.md).

Each action is a registered ``SuspectAction`` that returns the competition with ``train_targets`` (what the loss
sees: relabel, soft) or ``train_weights`` (how often a row is drawn, 0 = never: drop, weight) set for the suspects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from podium.config import PodiumConfig
from podium.core.errors import PodiumError, list_some
from podium.core.registry import Registry
from podium.data.folders.ingest import Competition
from podium.inference.sources import oof_probabilities, open_source, provenance, same_folds


@dataclass(frozen=True)
class Suspects:
    """The source's suspects among this run's training rows: their row indices, quality scores in [0, 1], suggested
    targets as a 0/1 matrix and the source's OOF probabilities of them."""

    rows: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray
    oof: np.ndarray


@dataclass(frozen=True)
class SuspectAction:
    """What ``data.suspect_action`` does with the suspects: ``apply(comp, suspects) -> comp``."""

    describe: str
    apply: Callable[[Competition, Suspects], Competition]


SUSPECT_ACTIONS: Registry[SuspectAction] = Registry("suspect action")


def _targets(comp: Competition) -> np.ndarray:
    """What the loss sees today: earlier sources' targets, else the labels as a 0/1 matrix."""
    base = comp.train_targets if comp.train_targets is not None else comp.task.onehot(comp.targets, len(comp.classes))
    return base.astype(np.float32)


def _weights(comp: Competition) -> np.ndarray:
    return (comp.train_weights if comp.train_weights is not None else np.ones(len(comp.train))).astype(np.float64)


def _drop(comp: Competition, s: Suspects) -> Competition:
    w = _weights(comp)
    w[s.rows] = 0.0
    return dataclasses.replace(comp, train_weights=w)


def _relabel(comp: Competition, s: Suspects) -> Competition:
    y = _targets(comp)
    y[s.rows] = s.suggested
    return dataclasses.replace(comp, train_targets=y)


def _soft(comp: Competition, s: Suspects) -> Competition:
    y = _targets(comp)
    q = s.quality[:, None]  # the less the models believe the label, the more their own probabilities count
    y[s.rows] = q * y[s.rows] + (1 - q) * s.oof
    return dataclasses.replace(comp, train_targets=y)


def _weight(comp: Competition, s: Suspects) -> Competition:
    w = _weights(comp)
    w[s.rows] *= np.clip(s.quality, 0.01, 1.0)  # 0 would drop the row: that is the drop action
    return dataclasses.replace(comp, train_weights=w)


SUSPECT_ACTIONS.register("drop")(SuspectAction("left out of training (still validated)", _drop))
SUSPECT_ACTIONS.register("relabel")(SuspectAction("trained on the suggested label", _relabel))
SUSPECT_ACTIONS.register("soft")(SuspectAction("trained on quality x label + (1 - quality) x OOF probabilities",
                                               _soft))
SUSPECT_ACTIONS.register("weight")(SuspectAction("drawn in proportion to their quality score", _weight))


def read_suspects(src: Any, comp: Competition, folds: np.ndarray) -> Suspects:
    """The source's OOF suspects that are training rows here, aligned with ``comp.train``."""
    table = src.suspects()
    if table is None:
        raise PodiumError(f"data.suspects={src.path} has no suspects.csv (it finished before podium wrote one); run "
                          "it again, or `podium resume` does not help: train a new run on the same folds.")
    table = table[table["source"] == "oof"]
    position = {str(i): r for r, i in enumerate(comp.train["id"].astype(str))}
    unknown = [i for i in table["id"] if i not in position]
    if unknown:
        raise PodiumError(f"data.suspects={src.path} names {len(unknown)} id(s) that are not training rows here "
                          f"({list_some(unknown, 5)}); use a run of the same data.")
    rows = np.array([position[i] for i in table["id"]], dtype=np.int64)
    lists = [set(s.split(" ")) if s else set() for s in table["suggested"]]  # space-joined where several (multilabel)
    suggested = np.array([[c in labels for c in comp.classes] for labels in lists], dtype=np.float32)
    oof = oof_probabilities(src, comp, folds, "data.suspects")[rows]
    return Suspects(rows, table["quality"].to_numpy(dtype=np.float64), suggested.reshape(len(rows), -1), oof)


def with_suspects(comp: Competition, folds: np.ndarray, cfg: PodiumConfig) -> tuple[Competition, dict[str, Any]]:
    """``comp`` with ``data.suspect_action`` applied to ``data.suspects``'s suspect labels, and what was done (for
    run.json and the console)."""
    if not cfg.data.suspects:
        return comp, {}
    src = open_source(cfg.data.suspects, "data.suspects", comp)
    same_folds(src, comp, folds, "data.suspects")
    found = read_suspects(src, comp, folds)
    action = SUSPECT_ACTIONS.get(cfg.data.suspect_action)
    note = (f"{len(found.rows)} suspect label(s) of {len(comp.train)} training rows {action.describe} "
            f"(data.suspect_action={cfg.data.suspect_action})")
    return action.apply(comp, found), {**provenance(src), "action": cfg.data.suspect_action,
                                       "rows": int(len(found.rows)), "note": note}
