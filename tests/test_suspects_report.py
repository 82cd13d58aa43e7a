"""The report's "Suspect labels" section on multiclass, multilabel and ordinal runs: the worst suspects as captioned
thumbnails (id, given, suggested, quality), the share of suspects per class, the duplicate conflicts, how to act on
them; a run without suspects.csv gets a one-line note."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
from podium.config import PodiumConfig, merge
from podium.pipeline import train
from podium.reporting import build_report, plots
from podium.reporting.sections import gather, short
from podium.reporting.suspects import MISSING, per_class, suspect_labels, too_many
from podium.runs.run import Run
from podium.tasks.suspects import SUSPECT_COLUMNS


def _data(kind: str, root: Path) -> tuple[Path, tuple[str, ...]]:
    """A competition folder of the task ``kind`` and the overrides that train it."""
    if kind == "multilabel":
        return datagen.csv_multilabel(root), ()
    if kind == "ordinal":
        return datagen.folders(root, per_class=8, classes=("0", "1", "2", "3", "4")), ("data.task=ordinal",)
    return datagen.csv_single(root), ()


def _known_suspects(run: Run, count: int = 5) -> pd.DataFrame:
    """A suspects table of ``count`` OOF rows (worst first) and two duplicate-conflict rows."""
    oof, classes = run.oof, list(run.info["classes"])
    rows = oof.head(count)
    given = rows["label"].fillna("").astype(str)  # ordinal grades are read back as numbers
    other = [classes[-1] if g.split()[:1] == [classes[0]] else classes[0] for g in given]
    table = pd.DataFrame({"id": rows["id"].astype(str), "fold": rows["fold"], "given": given,
                          "suggested": other, "quality": np.linspace(0.05, 0.4, count), "source": "oof"})
    clash = pd.DataFrame({"id": ["dupA", "dupB"], "fold": [-1, -1], "given": [classes[0], classes[1]],
                          "suggested": ["", ""], "quality": [np.nan, np.nan],
                          "source": ["duplicate conflict (cluster 7)"] * 2})
    return pd.concat([table, clash], ignore_index=True)


@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "ordinal"])
def test_the_report_shows_the_suspect_labels(kind: str, tmp_path: Path, tiny: tuple[str, ...], monkeypatch) -> None:
    data, extra = _data(kind, tmp_path / "data")
    run = train(data, merge(PodiumConfig(), [*tiny, *extra]))
    written = run.suspects()  # every finished run writes suspects.csv
    assert written is not None and list(written.columns) == list(SUSPECT_COLUMNS)
    page = build_report(run).read_text()
    assert 'id="suspects"' in page and "Suspect labels" in page and "could not be built" not in page
    assert "data.suspect_action=drop|relabel|soft|weight" in page and "at chance level" in page

    known = _known_suspects(run)
    run.write_suspects(known)
    captions: list[list[str]] = []
    grid_png = plots.grid_png

    def spy(images, text, **kwargs):
        captions.append(list(text))
        return grid_png(images, text, **kwargs)

    monkeypatch.setattr(plots, "grid_png", spy)
    inp = gather(run)
    body = suspect_labels(inp)
    assert 'alt="suspect labels"' in body and len(captions) == 1 and len(captions[0]) == 5
    first = known.iloc[0]
    assert captions[0][0].splitlines() == [short(first["id"]), f"given {first['given'] or '(none)'}",
                                           f"suggested {first['suggested']}", "quality 0.05"]
    assert f"5 of {len(run.oof)} out-of-fold labels" in body
    assert "Duplicate conflicts (2 images" in body and "dupA" in body and "duplicate conflict (cluster 7)" in body
    shares = per_class(inp, known[known["source"] == "oof"])
    truth = inp.truth()
    flagged = run.oof["id"].astype(str).isin(known["id"]).to_numpy()
    assert shares["suspects"].tolist() == truth[flagged].sum(axis=0).astype(int).tolist()
    assert shares["images"].tolist() == truth.sum(axis=0).astype(int).tolist()
    assert np.allclose(shares["share"], shares["suspects"] / shares["images"])


def test_without_images_a_table_and_without_suspects_a_note(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    run = train(datagen.csv_single(tmp_path / "data"), merge(PodiumConfig(), list(tiny)))
    known = _known_suspects(run)
    run.write_suspects(known)
    run._update_info({**run.info, "data_dir": str(tmp_path / "gone")})  # the data folder is not here
    body = suspect_labels(gather(run))
    assert "images are not shown" in body and "<img" not in body
    assert all(f"<td>{i}</td>" in body for i in known["id"]) and "0.0500" in body
    (run.path / "suspects.csv").unlink()  # a run that finished before podium wrote suspect labels
    body = suspect_labels(gather(run))
    assert body.count("<p") == 1 and "no suspects.csv" in body and MISSING.split(":")[0] in body
    page = build_report(run).read_text()
    assert 'id="suspects"' in page and "could not be built" not in page


def test_too_many_flagged_labels_blame_the_model() -> None:
    assert too_many(5, 48) == "" and too_many(12, 48) == ""
    assert too_many(44, 48).startswith("92% of the labels are flagged") and "chance level" in too_many(44, 48)


def test_inspect_points_to_podium_suspects(tmp_path: Path, capsys) -> None:
    """inspect cannot judge labels without a model: one line after the label conflicts says where suspects come from."""
    from podium.config import load_config
    from podium.data.inspection import inspect_data

    inspect_data(datagen.csv_single(tmp_path / "data"), load_config(None, [f"run.root={tmp_path / 'runs'}"]),
                 tmp_path / "inspect")
    lines = capsys.readouterr().out.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("label conflicts:"))
    assert lines[at + 1] == ("suspect labels: train once, then `podium suspects RUN` lists the labels the OOF "
                             "predictions contradict")
