"""The command line: a thin typer layer that parses arguments and calls one library function per subcommand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from podium.config import help_text, load_config
from podium.errors import Interrupted, PodiumError

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
def runs(root: Annotated[Path, typer.Option(help="Runs root holding podium.db.")] = Path("runs")) -> None:
    """The experiment log, one row per run, best CV score first."""
    from podium.runs.run import experiment_log

    rows = experiment_log(root)
    if not rows:
        Console().print(f"No runs recorded in {root}.")
        return
    table = Table("name", "started", "status", "task", "model", "size", "folds", "epochs", "metric", "cv", "wall",
                  "config", "commit")
    for r in rows:
        score = "" if r["cv_score"] is None else f"{r['cv_score']:.4f}"
        wall = "" if r["wall_s"] is None else f"{r['wall_s']:.0f}s"
        table.add_row(r["name"], r["started"], r["status"], r["task"], r["model"], str(r["img_size"] or ""),
                      str(r["folds"]), str(r["epochs"]), r["metric"], score, wall, r["config_hash"],
                      r["git_commit"] or "")
    Console(width=200).print(table)


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
