"""Which column of a competition's train.csv is what: the label column(s), the group column, columns that restate the
label, and metadata. Read as downloaded, with no data flags:

- the label is what the sample submission names (its non-id columns: one label column, or one probability column
  per class) when they are columns of train.csv; without a sample, the only other column, else the first column
  named like a label (``LABEL_NAMES``), else every 0/1 column (one per class);
- a column named like a patient, subject or group id is the group column (``data.group_col`` overrides);
- a column that restates the label in other words (the label is a function of it: SIIM-ISIC's ``diagnosis`` and
  ``benign_malignant`` beside ``target``) is never an input or a label;
- every other column is metadata: listed, and ignored for training;
- a label column named like a grade (``GRADE_WORDS``: APTOS's ``diagnosis``, APTOS 2015's ``level``, ``kl_grade``)
  that holds the integers 0..K-1 (K >= 3) holds grades (``ColumnRoles.grades``): ``data.task=auto`` trains them as
  the ordinal task, scored by QWK. Cassava's ``label`` is not named like a grade and stays multiclass.

Each choice the data left open is one note naming the choice made and the override that changes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some

# names of an id column, in the order one is preferred (data.id_col overrides)
ID_CANDIDATES = ("image_id", "image", "id", "id_code", "image_name", "filename", "file_name", "file", "name", "img")

# names of a label column, in the order one is preferred when several are present (SIIM-ISIC: target, diagnosis)
LABEL_NAMES = ("label", "labels", "target", "targets", "class", "classes", "category", "diagnosis", "grade",
               "level", "y", "tag", "tags", "species", "disease")
GROUP_WORDS = ("patientid", "patient", "subjectid", "subject", "groupid", "group", "participantid", "animalid",
               "individualid", "userid", "plantid", "sourceid")
# words of a column name that say it holds grades (kl_grade, KLGrade, severity_level); the one list of them
GRADE_WORDS = ("grade", "diagnosis", "level", "severity", "score", "stage", "kl")
MIN_GRADES = 3  # two integer classes are a binary task, not grades
ZERO_ONE = {"0", "1", "0.0", "1.0"}


@dataclass(frozen=True)
class ColumnRoles:
    """What each column of train.csv is, and the notes saying what was decided where the data left it open."""

    labels: tuple[str, ...]
    group: str = ""
    restating: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    grades: bool = False  # the label column is named like a grade and holds the integers 0..K-1 (K >= 3)

    def summary(self) -> dict[str, object]:
        """The roles as a JSON-ready dict (``podium inspect``)."""
        return {"label_columns": list(self.labels), "group_column": self.group or None,
                "restating_columns": list(self.restating), "metadata_columns": list(self.metadata)}


def guess_id_col(df: pd.DataFrame, configured: str, name: str) -> str:
    """The configured id column, else the first column named like an id, else the first column."""
    if configured:
        if configured not in df.columns:
            raise PodiumError(f"{name} has no column {configured!r} (data.id_col); its columns: {list(df.columns)}.")
        return configured
    lower = {c.lower(): c for c in df.columns}
    return next((lower[c] for c in ID_CANDIDATES if c in lower), df.columns[0])


def check_ids(ids: list[str], name: str) -> None:
    """Every id of the CSV ``name`` filled and unique, or a one-line error naming the rows."""
    s = pd.Series(ids)
    empty = s.index[s == ""].tolist()
    if empty:
        raise PodiumError(f"{name} has empty ids in rows {list_some([i + 2 for i in empty])}; fill or delete them.")
    dup = s[s.duplicated(keep=False)]
    if len(dup):
        rows = [f"{v} (rows {', '.join(str(i + 2) for i in g.index)})" for v, g in dup.groupby(dup, sort=False)]
        raise PodiumError(f"{name} has duplicate ids: {list_some(rows, 5)}. Each image must appear once.")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def zero_one(col: pd.Series) -> bool:
    """Whether every cell of the column is 0 or 1."""
    return set(col.str.strip()) <= ZERO_ONE


def group_column(columns: list[str]) -> str:
    """The first column named like a patient, subject or group id (``patient_id``, ``PatientID``), or ''."""
    keys = {_key(c): c for c in columns}
    return next((keys[w] for w in GROUP_WORDS if w in keys), "")


def restates(df: pd.DataFrame, col: str, labels: list[str]) -> bool:
    """Whether ``col`` says the label in other words: a text column each of whose values goes with one label only,
    and whose values repeat (an id-like column, unique per row, or a numeric one is not said to restate anything)."""
    values = df[col].str.strip()
    if values.nunique() >= len(df) / 2 or values.eq("").all() or pd.to_numeric(values, errors="coerce").notna().all():
        return False  # an id-like, empty or numeric column (an age) restating the label is a coincidence
    key = df[labels].apply(lambda r: "\x1f".join(r.str.strip()), axis=1)
    return bool((pd.DataFrame({"v": values, "k": key}).groupby("v")["k"].nunique() == 1).all())


def column_roles(df: pd.DataFrame, id_col: str, cfg: DataConfig, sample_cols: list[str] | None,
                 name: str = "train.csv") -> ColumnRoles:
    """The roles of ``df``'s columns besides the id; ``sample_cols``: the sample submission's non-id columns (None
    without a sample). The configured ``data.label_cols``, ``data.ignore_cols`` and ``data.group_col`` win."""
    others = [c for c in df.columns if c != id_col and c not in cfg.ignore_cols]
    notes: list[str] = []
    group = cfg.group_col
    if not group:
        group = group_column([c for c in others if c not in cfg.label_cols])
        if group:
            notes.append(f"{name}: {group} is the group column (its rows stay in one fold); "
                         f"data.group_col=OTHER overrides, data.ignore_cols={group} drops it.")
    rest = [c for c in others if c != group]
    labels = list(cfg.label_cols) or _label_columns(df, rest, sample_cols, name, notes)
    leftover = [c for c in rest if c not in labels]
    restating = [c for c in leftover if labels and restates(df, c, labels)]
    metadata = [c for c in leftover if c not in restating]
    if restating:
        notes.append(f"{name}: {', '.join(restating)} restate{'s' if len(restating) == 1 else ''} the label "
                     f"{', '.join(labels)}; never used as input or label.")
    if metadata and not cfg.label_cols:
        notes.append(f"{name}: metadata column{'s' if len(metadata) > 1 else ''} {', '.join(metadata)} ignored for "
                     f"training; data.label_cols=... picks other label columns.")
    grades = holds_grades(df, labels)
    suggest = _ordinal_note(df, labels, cfg, grades)
    if suggest:
        notes.append(suggest)
    return ColumnRoles(tuple(labels), group, tuple(restating), tuple(metadata), tuple(notes), grades)


def _label_columns(df: pd.DataFrame, rest: list[str], sample_cols: list[str] | None, name: str,
                   notes: list[str]) -> list[str]:
    """The label column(s) by the module's rules; every column when none applies (the caller explains why that
    cannot be read)."""
    if len(rest) <= 1:
        return rest
    if sample_cols:
        named = [c for c in sample_cols if c in rest]
        if named and len(named) == len(sample_cols):
            notes.append(f"{name}: label column{'s' if len(named) > 1 else ''} "
                         f"{_short(named)} (named by the sample submission); data.label_cols=... overrides.")
            return named
    keys = {_key(c): c for c in rest}
    found = [keys[w] for w in LABEL_NAMES if w in keys]
    if found:
        also = f" (also named like a label: {', '.join(found[1:])}; data.label_cols={found[1]} uses it)" \
            if len(found) > 1 else ""
        notes.append(f"{name}: label column {found[0]} (by its name){also}; data.label_cols=... overrides.")
        return [found[0]]
    binary = [c for c in rest if zero_one(df[c])]
    if len(binary) >= 2:
        notes.append(f"{name}: one 0/1 column per class ({_short(binary)}); data.label_cols=... overrides.")
        return binary
    return rest


def grade_like(column: str) -> bool:
    """Whether a column's name says it holds grades: one of its words (snake_case, camelCase, spaces) or the whole
    name is one of ``GRADE_WORDS`` (``diagnosis``, ``level``, ``kl_grade``, ``KLGrade``; not ``label``)."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", column)
    return any(w in GRADE_WORDS for w in (_key(column), *(w.lower() for w in words)))


def _integers(df: pd.DataFrame, labels: list[str]) -> set[str] | None:
    """The values of the one label column when it is named like a grade and every value is an integer, else None."""
    if len(labels) != 1 or not grade_like(labels[0]):
        return None
    values = set(df[labels[0]].str.strip())
    return values if values and all(v.isdigit() for v in values) else None


def holds_grades(df: pd.DataFrame, labels: list[str]) -> bool:
    """Whether the label is one column named like a grade holding the integers 0..K-1, every one of them, K >= 3."""
    values = _integers(df, labels)
    return values is not None and len(values) >= MIN_GRADES and {int(v) for v in values} == set(range(len(values)))


def _ordinal_note(df: pd.DataFrame, labels: list[str], cfg: DataConfig, grades: bool) -> str:
    """With ``data.task=auto``: the note that grades are trained as the ordinal task (and how to say they are plain
    classes), or for other integers in a column named like a grade (1..5, gaps) the suggestion of
    ``data.task=ordinal``."""
    values = _integers(df, labels) if cfg.task == "auto" else None
    if values is None or len(values) < MIN_GRADES:
        return ""
    span = f"{min(values, key=int)}..{max(values, key=int)}"
    if grades:
        return (f"{labels[0]} holds integer grades {span}: trained as grades (data.task=ordinal, scored by qwk with "
                "fitted cut points); data.task=multiclass trains them as unordered classes.")
    return (f"{labels[0]} holds integer grades {span}: if they are ordered (a severity), data.task=ordinal trains "
            "and scores them as grades (QWK).")


def _short(cols: list[str], n: int = 4) -> str:
    return ", ".join(cols[:n]) + (f" and {len(cols) - n} more" if len(cols) > n else "")
