"""The command line: a thin typer layer. Each subcommand parses its arguments, calls exactly one ``podium.api``
function and prints what it returns; nothing here reads a run folder or a config. The API is imported inside each
command, so ``podium --help`` starts without torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
import typer.core
from rich.text import Text

from podium.cli_deploy import TrustMetric, export, merge, pack, serve
from podium.cli_tables import console, show_comparison, show_ensemble, show_leaderboards, show_models, show_sweep
from podium.core.errors import Interrupted, PodiumError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="podium: from a Kaggle-style image folder to a validated model and submission.")
err = console(stderr=True, highlight=False, soft_wrap=True)  # soft_wrap: an error stays one line when piped

# Arguments and options that several subcommands share, declared once.
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Config overrides, section.key=value.",
                                                          show_default=False)]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")]
DataDir = Annotated[Path, typer.Argument(help="Competition folder (train.csv or class folders).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
Root = Annotated[Path, typer.Option(help="Runs root holding podium.db.")]
RunDir = Annotated[Path, typer.Argument(help="Run folder made by podium train (or an ensemble folder).")]
Jobs = Annotated[int, typer.Option(help="Runs at once, in separate processes sharing the CPU cores (train.threads = "
                                        "cores // jobs); keep 1 on a single GPU.")]

# --ray [ADDRESS]: without an address (see ray_flag), Ray starts on this machine
RayAddress = Annotated[str, typer.Option("--ray", metavar="[ADDRESS]", show_default=False,
                                         help="Run each fold / grid point / trial as a Ray task: --ray alone starts "
                                              "Ray on this machine; --ray HOST:6379 (or auto) joins that cluster.")]
CpusPerTask = Annotated[float, typer.Option(help="With --ray: CPU cores each task holds (its torch threads).")]
GpusPerTask = Annotated[Optional[float], typer.Option(help="With --ray: GPUs each task holds (0.25 packs four on one "
                                                           "GPU); default 1 when the cluster has GPUs, else 0.",
                                                      show_default=False)]
Retries = Annotated[int, typer.Option(help="With --ray: times a task whose worker died is started again (resuming "
                                           "its run when its folder is on shared storage). With --storage: times a "
                                           "failed combination is queued again.")]


def ray_flag(argv: list[str]) -> list[str]:
    """``--ray`` given without an address gets ``local``: the next argument is its address only when it looks like
    one (``auto``, ``local``, ``host:port``, ``ray://...``), not a data folder or an override."""
    out = list(argv)
    for i in reversed([i for i, a in enumerate(out) if a == "--ray"]):
        following = out[i + 1] if i + 1 < len(out) else ""
        if not (following in ("auto", "local") or (":" in following and "=" not in following)):
            out.insert(i + 1, "local")
    return out


class ConfigHelpCommand(typer.core.TyperCommand):
    """A command whose help ends with every config key, its default, choices and range. Built only when help is
    shown: the choices come from the registries, whose modules import torch."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Append the config options to the help."""
        from podium.api import config_help

        self.epilog = "Config options (section.key=default):\n\n\b\n" + config_help()
        super().format_epilog(ctx, formatter)


SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Drop unreadable training images (data.skip_bad=true).")]


@app.command(cls=ConfigHelpCommand)
def train(data_dir: DataDir, overrides: Overrides = None, config: ConfigFile = None, skip_bad: SkipBad = False,
          ray: RayAddress = "", cpus_per_task: CpusPerTask = 1.0, gpus_per_task: GpusPerTask = None,
          retries: Retries = 2) -> None:
    """Train K folds on DATA_DIR; write OOF metrics, and test predictions plus submission when there is a test set.
    With --ray each fold is a Ray task and the folds are merged as `podium merge` does."""
    from podium.api import train as run

    run(data_dir, config, [*(overrides or []), *(["data.skip_bad=true"] if skip_bad else [])], ray=ray,
        cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, retries=retries)


@app.command(cls=ConfigHelpCommand)
def auto(
    data_dir: DataDir,
    overrides: Overrides = None,
    budget: Annotated[str, typer.Option(help="Wall time from start to final submission: 90s, 15m, 2h, 1h30m.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Probe and print the plan, train nothing.")] = False,
    inference_budget: Annotated[str, typer.Option(
        help="Time the hidden test set's prediction may take (9h): TTA views, folds, then members are dropped until "
             "the forecast fits.")] = "",
    hidden_images: Annotated[Optional[int], typer.Option(
        help="Images in the hidden test set (default: the public test set's count), for the forecast.")] = None,
    config: ConfigFile = None,
    ray: RayAddress = "",
    cpus_per_task: CpusPerTask = 1.0,
    gpus_per_task: GpusPerTask = None,
    retries: Retries = 2,
) -> None:
    """Plan, train, blend and finish on DATA_DIR within --budget: the final run or ensemble folder's submission.
    With --ray the probe and each planned run are Ray tasks, one at a time, on the node that trains."""
    from podium.api import auto as run

    if not budget:
        raise PodiumError("podium auto needs --budget, e.g. --budget 2h (90s, 15m, 2h, 1h30m).")
    result = run(data_dir, budget, config, overrides or [], dry_run=dry_run, inference_budget=inference_budget,
                 hidden_images=hidden_images, ray=ray, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
                 retries=retries)
    if not dry_run:
        console().print(f"final folder {result.path}: CV {result.metrics['metric']} {result.metrics['cv_score']:.4f}")


@app.command(cls=ConfigHelpCommand)
def inspect(
    data_dir: DataDir,
    overrides: Overrides = None,
    config: ConfigFile = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: <run.root>/inspect-<name>).")] = None,
) -> None:
    """Check DATA_DIR as train would (task, counts, sizes, bad files, duplicates, conflicts, test overlap) and write
    inspect.json, duplicates.csv and contact_sheet.png."""
    from podium.api import inspect as run

    run(data_dir, config, overrides or [], out)


@app.command(cls=ConfigHelpCommand)
def preview(
    data_dir: DataDir,
    overrides: Overrides = None,
    config: ConfigFile = None,
    out: Annotated[Optional[Path], typer.Option(help="Output PNG (default: <run.root>/preview-<data>.png).")] = None,
) -> None:
    """Write a PNG grid of augmented training images per class (batch augmentation and mixed labels included)."""
    from podium.api import preview as run

    console().print(f"wrote {run(data_dir, config, overrides or [], out)}")


@app.command()
def resume(run_dir: RunDir, metric: TrustMetric = "") -> None:
    """Continue an interrupted run where it stopped (finished folds are kept, an unfinished one resumes)."""
    from podium.api import resume as run

    run(run_dir, metric=metric)


@app.command()
def predict(
    run_dir: Annotated[Optional[Path], typer.Argument(help="Run folder made by podium train (or an ensemble folder "
                                                          "with --data; none with --onnx).")] = None,
    images: Annotated[Optional[Path], typer.Option(help="Predict every image below this folder instead.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output CSV (default: in the run folder; with --data: "
                                                     "submission.csv).")] = None,
    tta: Annotated[Optional[str], typer.Option(help="TTA views, comma-separated (default: the run's).")] = None,
    device: Device = "auto",
    data: Annotated[Optional[Path], typer.Option(help="Predict this competition folder's test set (e.g. a Kaggle "
                                                      "hidden test set) into --out only; folders may be read-only.")]
    = None,
    onnx: Annotated[Optional[Path], typer.Option(help="An ONNX file (or bundle folder) from podium export: predict "
                                                      "--images with onnxruntime, without torch (no RUN_DIR).")]
    = None,
    metric: TrustMetric = "",
    folds: Annotated[Optional[str], typer.Option(help="Predict with these folds only, comma-separated (default: "
                                                      "all finished folds).")] = None,
    members: Annotated[Optional[str], typer.Option(help="An ensemble's members to predict with, comma-separated run "
                                                        "names (default: all; weights rescaled).")] = None,
    estimate: Annotated[int, typer.Option(help="Print how long predicting this many fresh images would take "
                                               "(from the run's measured throughput) and predict nothing.")] = 0,
) -> None:
    """Predict with every fold (TTA, fold average): the test set into submission.csv, or a folder of images."""
    views = [v.strip() for v in tta.split(",") if v.strip()] if tta else None
    if folds and not all(f.strip().isdigit() for f in folds.split(",") if f.strip()):
        raise PodiumError(f"--folds {folds}: give fold numbers, comma-separated (e.g. --folds 0,1).")
    kept = [int(f) for f in folds.split(",") if f.strip()] if folds else None
    names = [m.strip() for m in members.split(",") if m.strip()] if members else None
    if estimate:
        from podium.api import estimate_inference
        from podium.cli_tables import show_forecast

        show_forecast(estimate_inference(run_dir, estimate, views, kept, names, metric=metric))
        return
    from podium.api import predict as run

    table = run(run_dir, images, out, views, device, data=data, onnx=onnx, metric=metric, folds=kept, members=names)
    console().print(f"wrote {table.attrs['path']}" + (f" ({len(table)} rows, validated)" if data else ""))


@app.command()
def report(run_dir: RunDir, metric: TrustMetric = "") -> None:
    """(Re)write RUN_DIR/report.html from the run folder alone: data, augmentations, learning rate, curves, OOF
    metrics, top losses, Grad-CAM, config and provenance."""
    from podium.api import report as build

    console().print(f"wrote {build(run_dir, metric=metric)}")


@app.command()
def suspects(
    run_dir: RunDir,
    top: Annotated[int, typer.Option(help="Rows to list, worst first (0: all).")] = 20,
) -> None:
    """List the training labels RUN_DIR's own out-of-fold predictions contradict (its suspects.csv), worst first,
    then the duplicate clusters whose labels disagree; data.suspects=RUN_DIR in a next run acts on them."""
    from podium.api import suspects as read
    from podium.cli_tables import show_suspects

    show_suspects(read(run_dir, top))


@app.command()
def runs(
    root: Root = Path("runs"),
    data: Annotated[Optional[Path], typer.Option(help="Only the runs of this data folder.")] = None,
    task: Annotated[Optional[str], typer.Option(help="Only the runs of this task.")] = None,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option(help="Two run folders: the config keys that differ "
                                                                      "and their metrics side by side.")] = None,
) -> None:
    """The experiment log, one table per data folder and task (best CV first, the metric named), or two runs
    compared."""
    from podium import api

    if compare:
        show_comparison(api.compare(*compare), compare)
        return
    groups = api.runs(root, data, task)
    if not groups:
        console().print(f"No runs recorded in {root}{' for these filters' if data or task else ''}.")
        return
    show_leaderboards(groups)


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Name pattern, e.g. '*efficientnet*' (default: all).")] = "",
    offline: Annotated[bool, typer.Option("--offline", help="Only those with weights on this machine.")] = False,
) -> None:
    """timm architectures, where model.pretrained=auto would get their weights here, and their input size and
    normalisation (from pretrained_cfg)."""
    from podium.api import models as catalog

    show_models(catalog(pattern, offline))


@app.command()
def probe(
    model: Annotated[str, typer.Option(help="timm model name.")] = "resnet18",
    size: Annotated[int, typer.Option(help="Input side in pixels; 0: the model's default.")] = 0,
    overrides: Overrides = None,
) -> None:
    """Find the largest training batch that fits on the CUDA GPU (mixed precision as train.precision says)."""
    from podium.api import probe as run

    r = run(model, size, overrides or [])
    if r.batch_size is None:
        console().print(f"{r.model} at {r.size} px on {r.device}: {r.reason}.")
    else:
        console().print(f"{r.model} at {r.size} px on {r.device} ({r.precision}): largest batch that fits "
                        f"{r.largest_fit}; train.batch_size=auto uses {r.batch_size}.")


@app.command()
def demo(
    overrides: Overrides = None,
    workdir: Annotated[Path, typer.Option(help="Where the demo data and runs go.")] = Path("podium-demo"),
) -> None:
    """Build a digits competition folder (scikit-learn's scans), train 3 folds on CPU and write the submission."""
    from podium.api import demo as run_demo

    run = run_demo(workdir, overrides or [])
    console().print(f"demo CV {run.metrics['metric']}: {run.metrics['cv_score']:.4f}; run folder {run.path}")


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
    root: Root = Path("runs"),
    name: Annotated[str, typer.Option(help="Name of the ensemble folder (default: ensemble-<data>-<blend>).")] = "",
    device: Device = "auto",
    metric: TrustMetric = "",
) -> None:
    """Blend finished runs of one data folder on their shared folds: honest (cross-fitted) OOF score, refitted
    decisions, blended test predictions and a validated submission.csv in a new ensemble folder."""
    from podium.api import ensemble as run

    ens = run(*(members or []), top=top, data=data, where=where or [], blend=blend, root=root, name=name,
              device=device, metric=metric)
    show_ensemble(ens.metrics, ens.path)


@app.command(cls=ConfigHelpCommand)
def sweep(
    data_dir: DataDir,
    overrides: Overrides = None,
    grid: Annotated[Optional[list[str]], typer.Option(help="An axis: section.key=v1,v2 (repeatable; every "
                                                           "combination of the axes is one run).")] = None,
    config: ConfigFile = None,
    jobs: Jobs = 1,
    name: Annotated[str, typer.Option(help="Sweep name (default: <data folder>-<hash of the config and axes>); "
                                           "the same command continues the same sweep.")] = "",
    storage: Annotated[str, typer.Option(help="Optuna storage URL (sqlite:///file.db, postgresql://...) through "
                                              "which several machines share the grid, each combination run once.")]
    = "",
    retries: Retries = 2,
    ray: RayAddress = "",
    cpus_per_task: CpusPerTask = 1.0,
    gpus_per_task: GpusPerTask = None,
) -> None:
    """Train every combination of the --grid axes on DATA_DIR (each an ordinary run) and print the sweep table (also
    <run.root>/sweeps/<name>/sweep.csv). Run it again to continue: finished combinations are skipped, an interrupted
    one resumes, a failed one is retried. Exits with status 1 when every combination failed."""
    from podium.api import sweep as run

    table = run(data_dir, grid or [], config, overrides or [], name, jobs, storage, retries, ray=ray,
                cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
    saved = Path(table.attrs["path"])
    show_sweep(table, table.attrs["axes"], saved)
    if (table["status"] == "failed").all():  # a script or CI job must not read an all-failed sweep as success
        err.print(Text.assemble(("error:", "red"), " every combination of the sweep failed; the reasons are in "
                                f"{saved}"))
        raise typer.Exit(1)


@app.command(cls=ConfigHelpCommand)
def search(
    data_dir: DataDir,
    space: Annotated[Path, typer.Option(help="YAML search space: section.key: {type: float|int|categorical, low, "
                                             "high, log, step, choices}.", show_default=False)],
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold (all processes together).")]
    = 20,
    storage: Annotated[str, typer.Option(help="Optuna storage URL (e.g. postgresql://...) shared by several "
                                              "machines; default: SQLite optuna.db in the runs root.")] = "",
    study: Annotated[str, typer.Option(help="Study name; an existing study is continued (default: <data>-search).")]
    = "",
    overrides: Overrides = None,
    config: ConfigFile = None,
    jobs: Jobs = 1,
    ray: RayAddress = "",
    cpus_per_task: CpusPerTask = 1.0,
    gpus_per_task: GpusPerTask = None,
    retries: Retries = 2,
) -> None:
    """Search hyper-parameters with Optuna (TPE sampler, median pruning on fold 0's per-epoch validation metric),
    each trial an ordinary run (a pruned one is marked pruned); print the best trial as a ready `podium train`
    command."""
    from podium.api import search as run

    best = run(data_dir, space, trials, config, overrides or [], storage, study, jobs, ray=ray,
               cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, retries=retries)
    console().print(f"study {best['study']} ({best['storage']}): best trial {best['number']}, cv {best['metric']} "
                    f"{best['value']:.4f}, run {best['run_dir']}")
    console(soft_wrap=True).print(best["command"])


for command in (export, serve, merge, pack):  # podium.cli_deploy: models that leave the run folder
    app.command()(command)


def main() -> None:
    """Console-script entry point: user errors become one red line and exit status 2; an interrupted run exits
    128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM) after saying how to resume it."""
    try:
        app(args=ray_flag(sys.argv[1:]))
    except PodiumError as e:
        err.print(Text.assemble(("error:", "red"), f" {e}"))  # the message verbatim: no markup, no emoji codes
        sys.exit(2)
    except Interrupted as e:  # the run has marked itself interrupted and printed how to resume
        sys.exit(128 + e.signum)


if __name__ == "__main__":
    main()
