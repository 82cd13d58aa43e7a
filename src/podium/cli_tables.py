"""The command line's tables: what ``podium.api`` returns (leaderboards, comparisons, sweeps, ensembles, the model
catalog) printed with rich. Only ``podium.cli`` uses this module.

Every line the command line prints goes through ``console``: keys, values, paths and class names are the user's own
text and come out verbatim (rich would read ``[red]`` as markup and ``:b:`` as an emoji code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table


def console(**options: Any) -> Console:
    """A console that prints text verbatim: no markup, no emoji codes (``cv.metric=a:b:c`` stays ``a:b:c``)."""
    return Console(markup=False, emoji=False, **options)


def show_leaderboards(groups: list[dict[str, Any]]) -> None:
    """One leaderboard per (data folder, task), best CV first, the metric named."""
    for g in groups:
        table = Table("name", "started", "status", "model", "size", "folds", "epochs", f"cv {g['metric']}", "wall",
                      "config", "commit", title=f"{g['data_dir']} ({g['task']} task, cv = {g['metric']} on "
                      f"{g.get('validated', 'all folds')})")
        for r in g["rows"]:
            score = "" if r["cv_score"] is None else f"{r['cv_score']:.4f}"
            wall = "" if r["wall_s"] is None else f"{r['wall_s']:.0f}s"
            table.add_row(r["name"], r["started"], r["status"], r["model"], str(r["img_size"] or ""),
                          str(r["folds"]), str(r["epochs"]), score, wall, r["config_hash"], r["git_commit"] or "")
        console(width=200).print(table)


def show_models(rows: list[dict[str, Any]]) -> None:
    """Architectures, where their weights come from here, input size and normalisation."""
    table = Table("architecture", "weights here", "size", "mean", "std")
    for r in rows:
        table.add_row(r["arch"], r["source"], str(r["input_size"]), ", ".join(f"{v:.3f}" for v in r["mean"]),
                      ", ".join(f"{v:.3f}" for v in r["std"]))
    console(width=160).print(table)
    usable = sum(r["source"] != "none" for r in rows)
    console().print(f"{len(rows)} architectures, {usable} with weights available here "
                    "(none: train with model.pretrained=none or get weights, see docs/WEIGHTS.md).")


def show_comparison(diff: dict, paths: tuple[Path, Path]) -> None:
    """Differing config keys, then the numbers, of two runs side by side."""
    def text(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    a, b = (p.resolve().name for p in paths)
    table = Table("config key", a, b, title="config keys that differ")
    for key, va, vb in diff["config"] or [("(none)", "", "")]:
        table.add_row(key, text(va), text(vb))
    numbers = Table("", a, b, title="metrics")
    for key, va, vb in diff["numbers"]:
        numbers.add_row(key, text(va), text(vb))
    out = console(width=200)
    out.print(table)
    out.print(numbers)


def show_ensemble(metrics: dict, path: Path) -> None:
    """The members' weights and scores, and the blend's honest and in-sample scores."""
    table = Table("member", "weight", f"cv {metrics['metric']}")
    for r in metrics["members"]:
        table.add_row(r["name"], f"{r['weight']:.3f}", f"{r['cv_score']:.4f}")
    table.add_row(f"blend ({metrics['blend']}), honest", "", f"{metrics['cv_score']:.4f}")
    table.add_row(f"blend ({metrics['blend']}), in-sample", "", f"{metrics['cv_score_in_sample']:.4f}")
    console(width=160).print(table)
    console().print(f"gain over the best member: {metrics['gain_over_best']:+.4f}; ensemble folder {path}")


def show_forecast(forecast: Any) -> None:
    """An inference forecast (``podium.inference.forecast.Forecast``): member, folds, views, images/s, minutes; the
    total, its fixed startup and decode, the device it was measured on and notes."""
    table = Table("member", "folds", "views", "images/s", "minutes")
    for r in forecast.rows():
        table.add_row(r["member"], str(r["folds"]), str(r["views"]), f"{r['images/s']:.1f}", f"{r['minutes']:.1f}")
    table.add_row("total", "", "", "", f"{forecast.total_s / 60:.1f}")
    console(width=160).print(table)
    out = console()
    out.print(forecast.line())
    for note in forecast.notes:
        out.print(note)


def show_sweep(table: pd.DataFrame, axes: list[str], saved: Path) -> None:
    """The sweep table, one row per combination (``saved``: where sweep.csv is)."""
    def num(v: object, fmt: str) -> str:
        return "" if v is None or v != v else format(v, fmt)

    metric = next((m for m in table["metric"] if m), "score")
    out = Table(*axes, f"cv {metric}", "no TTA", "s/epoch", "peak MiB", "params", "wall", "status")
    for _, r in table.iterrows():
        params = "" if r["params"] is None or r["params"] != r["params"] else f"{r['params'] / 1e6:.2f}M"
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        out.add_row(*[str(r[a]) for a in axes], num(r["cv_score"], ".4f"), num(r["cv_score_no_tta"], ".4f"),
                    num(r["epoch_s"], ".1f"), num(r["peak_mem_mb"], ".0f"), params, num(r["wall_s"], ".0f"),
                    status)
    console(width=200).print(out)
    console().print(f"sweep table: {saved}")


def show_suspects(table: pd.DataFrame) -> None:
    """Suspect labels, worst first (rank, id, fold, given, suggested, quality, source), the count among the OOF
    labels and how a next run acts on them."""
    out = Table("rank", "id", "fold", "given", "suggested", "quality", "source")
    for rank, r in enumerate(table.itertuples(), start=1):
        quality = "" if r.quality != r.quality else f"{r.quality:.3f}"  # NaN: a duplicate conflict, no model judged
        out.add_row(str(rank), str(r.id), "" if int(r.fold) < 0 else str(r.fold), r.given or "(none)",
                    r.suggested or ("" if r.source != "oof" else "(none)"), quality, r.source)
    a = table.attrs
    share = a["oof_suspects"] / max(a["oof_rows"], 1)
    console(width=200).print(out)
    more = a["oof_suspects"] + a["conflicts"] - len(table)
    lines = console(soft_wrap=True)  # each a line, however narrow the terminal
    lines.print(f"{a['oof_suspects']} of {a['oof_rows']} out-of-fold labels are suspects ({share:.1%}); "
                f"{a['conflicts']} images in duplicate clusters with disagreeing labels"
                + (f"; {more} more rows not shown (--top 0 lists all)." if more > 0 else "."))
    if a.get("warning"):
        lines.print(f"warning: {a['warning']}")
    lines.print(f"to act on them: podium train DATA data.suspects={a['run']} data.suspect_action=drop|relabel|soft|"
                "weight (look first: a run at chance level flags labels at random)")
