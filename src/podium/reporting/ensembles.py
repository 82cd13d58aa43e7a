"""The report of an ensemble folder (``podium.runs.ensemble.Ensemble``): its own overview, members and config
sections; the data, OOF-metrics, decisions and top-loss sections are the run report's, read through the ensemble
(the data through its first member's config). Training curves, augmentations and Grad-CAM need per-fold logs and
checkpoints, which only the members have: their own reports show them, linked from the members section."""

from __future__ import annotations

import html
import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd

from podium.config import PodiumConfig, to_dict
from podium.core.errors import PodiumError
from podium.data.pixels.image_ops import ImageOps, image_ops
from podium.reporting.html import key_values, note, pre, table
from podium.reporting.sections import Inputs, gather, run_metrics
from podium.runs.ensemble import Ensemble
from podium.runs.run import Run
from podium.tasks.crossfit import HonestScore


def gather_ensemble(ens: Ensemble) -> Inputs:
    """The sections' inputs for an ensemble folder: its OOF and metrics, the data read as its members read it, and
    the members' image ops when they all agree (else the images as stored, with a note saying why)."""
    runs = ens.member_runs()
    configs = [r.config for r in runs]
    inp = gather(ens, configs[0] if configs else PodiumConfig())
    ops, why = {image_ops(c.data) for c in configs}, ""
    if len(ops) > 1:
        ops, why = {ImageOps()}, ("The members preprocess their images differently (data.preprocess: "
                                  + "; ".join(", ".join(c.data.preprocess) or "none" for c in configs)
                                  + "), so the images are shown as stored.")
    spec = ens.members
    return replace(inp, ops=next(iter(ops), ImageOps()), ops_note=why,
                   model=f"ensemble ({spec.get('blend')}) of {len(spec['members'])} runs")


def overview(inp: Inputs) -> str:
    """The ensemble's identity: data folder, blend, members, its honest and in-sample scores."""
    info, metrics = inp.info, run_metrics(inp.run)
    rows: list[tuple[str, object]] = [
        ("ensemble folder", inp.run.path),
        ("status", inp.run.status + (f" ({info['reason']})" if info.get("reason") else "")),
        ("data folder", info.get("data_dir")), ("task", info.get("task")),
        ("classes", f"{len(inp.classes)}: {', '.join(inp.classes[:12])}{' ...' if len(inp.classes) > 12 else ''}"),
        ("blend", f"{info.get('blend')} of {len(inp.run.members['members'])} runs"),
    ]
    if metrics:
        rows += [(f"CV {metrics['metric']} (honest, cross-fitted)", f"{metrics['cv_score']:.4f}"),
                 ("in-sample (final weights)", f"{metrics['cv_score_in_sample']:.4f}"),
                 *([("decisions", HonestScore.from_fields(metrics).beside())] if metrics.get("cross_fit") else []),
                 ("best member", f"{metrics['best_member_score']:.4f}"),
                 ("gain over the best member", f"{metrics['gain_over_best']:+.4f}")]
    rows += [("host", info.get("host", "")), ("started", info.get("started", "")),
             ("wall time", f"{info['wall_s']:.1f} s" if "wall_s" in info else "")]
    return key_values(rows)


def members(inp: Inputs) -> str:
    """Each member's weight (final and per fold) and OOF scores against the blend's honest and in-sample ones,
    links to the members' reports, and how much the members' OOF predictions agree."""
    spec, metrics = inp.run.members, run_metrics(inp.run) or {}
    scored = {r["name"]: r for r in metrics.get("members", [])}
    fold_weights = sorted((spec.get("fold_weights") or {}).items(), key=lambda kv: int(kv[0]))
    runs = {r.path.name: r for r in inp.run.member_runs()}
    rows = []
    for k, m in enumerate(spec["members"]):
        row = {"member": m["name"], "model": runs[m["name"]].config.model.name if m["name"] in runs else "(gone)",
               "weight": m["weight"], **{f"fold {f} weight": w[k] for f, w in fold_weights}}
        rows.append({**row, **scored.get(m["name"], {}).get("overall", {})})
    if metrics:
        rows += [{"member": "blend, honest (cross-fitted)", **metrics["overall"]},
                 {"member": "blend, in-sample (final weights)", **metrics["overall_in_sample"]}]
    parts = ["<p>Each member scored on the OOF rows with its own decisions refitted, as the blend's are; the "
             "honest blend scores every fold with weights fitted on the other folds.</p>", table(pd.DataFrame(rows))]
    links = [f'<a href="{html.escape(os.path.relpath(r.report_path, inp.run.path))}">{html.escape(name)}</a>'
             for name, r in runs.items() if r.report_path.is_file()]
    if links:
        parts.append("<p>Members' reports (training curves, augmentations, Grad-CAM): " + ", ".join(links) + "</p>")
    parts.append(_agreement(inp, list(runs.values())))
    return "".join(parts)


def _agreement(inp: Inputs, runs: list[Run]) -> str:
    """Pearson correlation of the members' OOF probabilities on the ensemble's rows: the lower, the more a blend
    can gain."""
    if len(runs) < 2 or inp.oof is None:
        return ""
    ids = inp.oof["id"].astype(str).tolist()
    try:
        flat = [r.oof.set_index("id").loc[ids, inp.classes].to_numpy(dtype=np.float64).ravel() for r in runs]
    except (PodiumError, KeyError):
        return note("The members' OOF predictions could not be read; their agreement is not shown.")
    corr = pd.DataFrame(np.corrcoef(flat), columns=[r.path.name for r in runs])
    corr.insert(0, "member", [r.path.name for r in runs])
    return "<h3>Agreement of the members' OOF probabilities (Pearson correlation)</h3>" + table(corr, digits=3)


def config(inp: Inputs) -> str:
    """members.json, and the config keys whose values differ between the members."""
    runs = inp.run.member_runs()
    flat = [{f"{s}.{k}": v for s, d in to_dict(r.config).items() for k, v in d.items()} for r in runs]
    keys = [k for k in dict.fromkeys(key for f in flat for key in f) if len({repr(f.get(k)) for f in flat}) > 1]
    parts = ["<h3>members.json</h3>", pre(json.dumps(inp.run.members, indent=2))]
    if keys:
        diff = pd.DataFrame({"key": keys, **{r.path.name: [str(f.get(k)) for k in keys] for r, f in zip(runs, flat)}})
        parts += ["<h3>Config keys that differ between the members</h3>", table(diff)]
    return "".join(parts)
