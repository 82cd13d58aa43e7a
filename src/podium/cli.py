"""The command line: a thin typer layer that parses arguments and calls one library function per subcommand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from podium.config import help_text, load_config
from podium.core.errors import Interrupted, PodiumError

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="podium: from a Kaggle-style image folder to a validated model and submission.")
err = Console(stderr=True, highlight=False, soft_wrap=True)  # soft_wrap: an error stays one line when piped

Overrides = Annotated[Optional[list[str]], typer.Argument(help="Config overrides, section.key=value.",
                                                          show_default=False)]


class ConfigHelpCommand(typer.core.TyperCommand):
    """A command whose help ends with every config key, its default, choices and range. Built only when help is
    shown: the choices come from the registries, whose modules import torch."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Append the config options to the help."""
        self.epilog = "Config options (section.key=default):\n\n\b\n" + help_text()
        super().format_epilog(ctx, formatter)



SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Drop unreadable training images (data.skip_bad=true).")]


@app.command(cls=ConfigHelpCommand)
def train(
    data_dir: Annotated[Path, typer.Argument(help="Competition folder (train.csv or class folders).")],
    overrides: Overrides = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")] = None,
    skip_bad: SkipBad = False,
) -> None:
    """Train K folds on DATA_DIR; write OOF metrics, and test predictions plus submission when there is a test set."""
    from podium.api import train as run

    run(data_dir, config, [*(overrides or []), *(["data.skip_bad=true"] if skip_bad else [])])


@app.command(cls=ConfigHelpCommand)
def inspect(
    data_dir: Annotated[Path, typer.Argument(help="Competition folder (train.csv or class folders).")],
    overrides: Overrides = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: <run.root>/inspect-<name>).")] = None,
) -> None:
    """Check DATA_DIR as train would (task, counts, sizes, bad files, duplicates, conflicts, test overlap) and write
    inspect.json, duplicates.csv and contact_sheet.png."""
    from podium.data.inspection import inspect_data

    inspect_data(data_dir, load_config(config, overrides or []), out)


@app.command(cls=ConfigHelpCommand)
def preview(
    data_dir: Annotated[Path, typer.Argument(help="Competition folder (train.csv or class folders).")],
    overrides: Overrides = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output PNG (default: <run.root>/preview-<data>.png).")] = None,
) -> None:
    """Write a PNG grid of augmented training images per class (batch augmentation and mixed labels included)."""
    from podium.api import preview as run

    Console().print(f"wrote {run(data_dir, config, overrides or [], out)}")


@app.command()
def resume(run_dir: Annotated[Path, typer.Argument(help="Run folder of an interrupted run.")]) -> None:
    """Continue an interrupted run where it stopped (finished folds are kept, an unfinished one resumes)."""
    from podium.api import resume as run

    run(run_dir)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run folder made by podium train.")],
    images: Annotated[Optional[Path], typer.Option(help="Predict every image below this folder instead.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output CSV (default: in the run folder).")] = None,
    tta: Annotated[Optional[str], typer.Option(help="TTA views, comma-separated (default: the run's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Predict with every fold (TTA, fold average): the test set into submission.csv, or a folder of images."""
    from podium.inference.run import predict_run

    views = tuple(v.strip() for v in tta.split(",") if v.strip()) if tta else None
    path = predict_run(run_dir, images, out, views, device)
    Console().print(f"wrote {path}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="Run folder made by podium train.")]) -> None:
    """(Re)write RUN_DIR/report.html from the run folder alone: data, augmentations, learning rate, curves, OOF
    metrics, top losses, Grad-CAM, config and provenance."""
    from podium.api import report as build

    Console().print(f"wrote {build(run_dir)}")


@app.command()
def runs(
    root: Annotated[Path, typer.Option(help="Runs root holding podium.db.")] = Path("runs"),
    data: Annotated[Optional[Path], typer.Option(help="Only the runs of this data folder.")] = None,
    task: Annotated[Optional[str], typer.Option(help="Only the runs of this task.")] = None,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option(help="Two run folders: the config keys that differ "
                                                                      "and their metrics side by side.")] = None,
) -> None:
    """The experiment log, one table per data folder and task (best CV first, the metric named), or two runs
    compared."""
    from podium.runs.board import compare as compare_runs
    from podium.runs.board import leaderboard

    if compare:
        show_comparison(compare_runs(*compare), compare)
        return
    groups = leaderboard(root, data, task)
    if not groups:
        Console().print(f"No runs recorded in {root}{' for these filters' if data or task else ''}.")
        return
    for g in groups:
        table = Table("name", "started", "status", "model", "size", "folds", "epochs", f"cv {g['metric']}", "wall",
                      "config", "commit", title=f"{g['data_dir']} ({g['task']} task, cv = {g['metric']} on "
                      f"{g.get('validated', 'all folds')})")
        for r in g["rows"]:
            score = "" if r["cv_score"] is None else f"{r['cv_score']:.4f}"
            wall = "" if r["wall_s"] is None else f"{r['wall_s']:.0f}s"
            table.add_row(r["name"], r["started"], r["status"], r["model"], str(r["img_size"] or ""),
                          str(r["folds"]), str(r["epochs"]), score, wall, r["config_hash"], r["git_commit"] or "")
        Console(width=200).print(table)


def show_comparison(diff: dict, paths: tuple[Path, Path]) -> None:
    """Differing config keys, then the numbers, of two runs side by side."""
    def text(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    a, b = (p.resolve().name for p in paths)
    table = Table("config key", a, b, title="config keys that differ")
    for key, va, vb in diff["config"] or [("(none)", "", "")]:
        table.add_row(key, escape(text(va)), escape(text(vb)))
    numbers = Table("", a, b, title="metrics")
    for key, va, vb in diff["numbers"]:
        numbers.add_row(key, escape(text(va)), escape(text(vb)))
    console = Console(width=200)
    console.print(table)
    console.print(numbers)


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Architecture name pattern, e.g. '*efficientnet*' (default: all).")]
    = "",
    offline: Annotated[bool, typer.Option("--offline", help="Only architectures with weights on this machine.")]
    = False,
) -> None:
    """timm architectures, where model.pretrained=auto would get their weights here, and their input size and
    normalisation (from pretrained_cfg)."""
    from podium.models.catalog import weight_catalog

    rows = weight_catalog(pattern, offline)
    table = Table("architecture", "weights here", "size", "mean", "std")
    for r in rows:
        table.add_row(r["arch"], r["source"], str(r["input_size"]), ", ".join(f"{v:.3f}" for v in r["mean"]),
                      ", ".join(f"{v:.3f}" for v in r["std"]))
    Console(width=160).print(table)
    usable = sum(r["source"] != "none" for r in rows)
    Console().print(f"{len(rows)} architectures, {usable} with weights available here "
                    "(none: train with model.pretrained=none or get weights, see docs/WEIGHTS.md).")


@app.command()
def probe(
    model: Annotated[str, typer.Option(help="timm model name.")] = "resnet18",
    size: Annotated[int, typer.Option(help="Input side in pixels; 0: the model's default.")] = 0,
    overrides: Overrides = None,
) -> None:
    """Find the largest training batch that fits on the CUDA GPU (mixed precision as train.precision says)."""
    from podium.engine.probe import probe as run

    cfg = load_config(None, [f"model.name={model}", f"model.img_size={size}", *(overrides or [])])
    r = run(cfg.model, cfg.train)
    if r.batch_size is None:
        Console().print(f"{r.model} at {r.size} px on {r.device}: {r.reason}.")
    else:
        Console().print(f"{r.model} at {r.size} px on {r.device} ({r.precision}): largest batch that fits "
                        f"{r.largest_fit}; train.batch_size=auto uses {r.batch_size}.")


@app.command()
def demo(
    overrides: Overrides = None,
    workdir: Annotated[Path, typer.Option(help="Where the demo data and runs go.")] = Path("podium-demo"),
) -> None:
    """Build a digits competition folder (scikit-learn's scans), train 3 folds on CPU and write the submission."""
    from podium.demo import run_demo

    run = run_demo(workdir, tuple(overrides or []))
    Console().print(f"demo CV {run.metrics['metric']}: {run.metrics['cv_score']:.4f}; run folder {run.path}")


@app.command()
def ensemble(
    members: Annotated[Optional[list[Path]], typer.Argument(help="Run folders to blend (or use --top).",
                                                            show_default=False)] = None,
    top: Annotated[int, typer.Option(help="Blend the K best finished runs of the experiment log instead.")] = 0,
    data: Annotated[Optional[Path], typer.Option(help="With --top: runs of this data folder only.")] = None,
    where: Annotated[Optional[list[str]], typer.Option(help="With --top: runs whose config has key=value "
                                                            "(repeatable), e.g. model.img_size=160.")] = None,
    blend: Annotated[str, typer.Option(help="Blend: weights (fitted on the OOF predictions for the task's metric) or "
                                            "an equal-weight one such as mean; an unknown name lists them all.")]
    = "weights",
    root: Annotated[Path, typer.Option(help="Runs root holding podium.db (for --top).")] = Path("runs"),
    name: Annotated[str, typer.Option(help="Name of the ensemble folder (default: ensemble-<data>-<blend>).")] = "",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps (members without saved test predictions).")]
    = "auto",
) -> None:
    """Blend finished runs of one data folder on their shared folds: honest (cross-fitted) OOF score, refitted
    decisions, blended test predictions and a validated submission.csv in a new ensemble folder."""
    from podium.multirun.ensemble import ensemble as run

    ens = run(members or [], top, data, where or [], blend, root, name, device)
    show_ensemble(ens.metrics, ens.path)


def show_ensemble(metrics: dict, path: Path) -> None:
    """The members' weights and scores, and the blend's honest and in-sample scores."""
    table = Table("member", "weight", f"cv {metrics['metric']}")
    for r in metrics["members"]:
        table.add_row(r["name"], f"{r['weight']:.3f}", f"{r['cv_score']:.4f}")
    table.add_row(f"blend ({metrics['blend']}), honest", "", f"{metrics['cv_score']:.4f}")
    table.add_row(f"blend ({metrics['blend']}), in-sample", "", f"{metrics['cv_score_in_sample']:.4f}")
    Console(width=160).print(table)
    Console().print(f"gain over the best member: {metrics['gain_over_best']:+.4f}; ensemble folder {path}")


@app.command(cls=ConfigHelpCommand)
def sweep(
    data_dir: Annotated[Path, typer.Argument(help="Competition folder (train.csv or class folders).")],
    overrides: Overrides = None,
    grid: Annotated[Optional[list[str]], typer.Option(help="An axis: section.key=v1,v2 (repeatable; every "
                                                           "combination of the axes is one run).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")] = None,
    jobs: Annotated[int, typer.Option(help="Combinations run at once, in separate processes sharing the CPU cores "
                                           "(train.threads = cores // jobs); keep 1 on a single GPU.")] = 1,
    name: Annotated[str, typer.Option(help="Sweep name (default: <data folder>-<hash of the config and axes>); "
                                           "the same command continues the same sweep.")] = "",
) -> None:
    """Train every combination of the --grid axes on DATA_DIR (each an ordinary run) and print the sweep table (also
    <run.root>/sweeps/<name>/sweep.csv). Run it again to continue: finished combinations are skipped, an interrupted
    one resumes, a failed one is retried. Exits with status 1 when every combination failed."""
    from podium.multirun.sweep import plan_sweep, run_sweep

    plan = plan_sweep(data_dir, load_config(config, overrides or []), grid or [], name, jobs)
    table = run_sweep(plan)
    show_sweep(table, list(plan.axes), plan.folder)
    if (table["status"] == "failed").all():  # a script or CI job must not read an all-failed sweep as success
        err.print(f"[red]error:[/red] every combination of the sweep failed; the reasons are in "
                  f"{escape(str(plan.folder / 'sweep.csv'))}")
        raise typer.Exit(1)


def show_sweep(table: pd.DataFrame, axes: list[str], folder: Path) -> None:
    """The sweep table, one row per combination."""
    def num(v: object, fmt: str) -> str:
        return "" if v is None or v != v else format(v, fmt)

    metric = next((m for m in table["metric"] if m), "score")
    out = Table(*axes, f"cv {metric}", "no TTA", "s/epoch", "peak MiB", "params", "wall", "status")
    for _, r in table.iterrows():
        params = "" if r["params"] is None or r["params"] != r["params"] else f"{r['params'] / 1e6:.2f}M"
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        out.add_row(*[str(r[a]) for a in axes], num(r["cv_score"], ".4f"), num(r["cv_score_no_tta"], ".4f"),
                    num(r["epoch_s"], ".1f"), num(r["peak_mem_mb"], ".0f"), params, num(r["wall_s"], ".0f"),
                    escape(status))
    Console(width=200).print(out)
    Console().print(f"sweep table: {folder / 'sweep.csv'}")


@app.command(cls=ConfigHelpCommand)
def search(
    data_dir: Annotated[Path, typer.Argument(help="Competition folder (train.csv or class folders).")],
    space: Annotated[Path, typer.Option(help="YAML search space: section.key: {type: float|int|categorical, low, "
                                             "high, log, step, choices}.", show_default=False)],
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold (all processes together).")]
    = 20,
    storage: Annotated[str, typer.Option(help="Optuna storage URL (e.g. postgresql://...) shared by several "
                                              "machines; default: SQLite optuna.db in the runs root.")] = "",
    study: Annotated[str, typer.Option(help="Study name; an existing study is continued (default: <data>-search).")]
    = "",
    overrides: Overrides = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")] = None,
    jobs: Annotated[int, typer.Option(help="Trials run at once, in separate processes on the shared study, sharing "
                                           "the CPU cores (train.threads = cores // jobs); keep 1 on a single GPU.")]
    = 1,
) -> None:
    """Search hyper-parameters with Optuna (TPE sampler, median pruning on fold 0's per-epoch validation metric),
    each trial an ordinary run (a pruned one is marked pruned); print the best trial as a ready `podium train`
    command."""
    from podium.multirun.search import search as run
    from podium.multirun.search import train_command

    best = run(data_dir, load_config(config, overrides or []), space, trials, storage, study, jobs)
    Console().print(f"study {best['study']} ({best['storage']}): best trial {best['number']}, cv {best['metric']} "
                    f"{best['value']:.4f}, run {best['run_dir']}")
    Console(soft_wrap=True).print(escape(train_command(data_dir, config, overrides or [], best["params"])))


def main() -> None:
    """Console-script entry point: user errors become one red line and exit status 2; an interrupted run exits
    128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM) after saying how to resume it."""
    try:
        app()
    except PodiumError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}")  # escaped: file names and lists may hold [brackets]
        sys.exit(2)
    except Interrupted as e:  # the run has marked itself interrupted and printed how to resume
        sys.exit(128 + e.signum)


if __name__ == "__main__":
    main()
