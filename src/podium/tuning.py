"""``search``: hyper-parameter search with Optuna, each trial an ordinary run.

    read_space   a YAML file: ``section.key: {type: float|int|categorical, low, high, log, step, choices}``; every
                 key, type and bound checked (like a config override) before anything runs
    search       a study (TPE sampler, median pruner on fold 0's per-epoch validation metric) in an RDB storage: by
                 default ``<run.root>/optuna.db`` (SQLite); any Optuna storage URL lets several processes or machines
                 work on one study, each trial claimed by one of them. ``trials`` caps the study's finished trials.
    train_command  the best trial as a ready ``podium train`` command line
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podium.config import PodiumConfig, merge
from podium.errors import PodiumError

TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


def optuna_module() -> Any:
    """Optuna, or a one-line error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise PodiumError("podium search needs Optuna: pip install 'podium[search]'.") from None
    return optuna


def read_space(path: str | Path, base: PodiumConfig) -> list[Param]:
    """The search space of a YAML file, every entry checked against the config."""
    p = Path(path)
    if not p.is_file():
        raise PodiumError(f"Search space file {p} does not exist.")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PodiumError(f"Search space file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw:
        raise PodiumError(f"{p} must map config keys to ranges, e.g. train.lr: {{type: float, low: 1e-4, high: "
                          "1e-2, log: true}.")
    return [check_param(p.name, str(key), spec, base) for key, spec in raw.items()]


def _number(value: Any, where: str, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PodiumError(f"{where}: {what} must be a number, got {value!r}.") from None


def check_param(name: str, key: str, spec: Any, base: PodiumConfig) -> Param:
    """One entry of the space file, with its values tried as config overrides of ``base``."""
    where = f"{name}: {key}"
    if not isinstance(spec, dict):
        raise PodiumError(f"{where} must be a mapping like {{type: float, low: 0.1, high: 1}}, got {spec!r}.")
    unknown = sorted(set(spec) - {"type", "low", "high", "log", "step", "choices"})
    if unknown:
        raise PodiumError(f"{where} has unknown field(s) {', '.join(unknown)}; use type, low, high, log, step, "
                          "choices.")
    kind = spec.get("type")
    if kind not in TYPES:
        raise PodiumError(f"{where}: type must be one of {', '.join(TYPES)}, got {kind!r}.")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise PodiumError(f"{where}: a categorical entry needs a non-empty list of choices.")
        param = Param(key, kind, choices=tuple(choices))
        values = list(choices)
    else:
        if "low" not in spec or "high" not in spec:
            raise PodiumError(f"{where}: a {kind} entry needs low and high.")
        low, high = _number(spec["low"], where, "low"), _number(spec["high"], where, "high")
        if kind == "int" and not (low.is_integer() and high.is_integer()):
            raise PodiumError(f"{where}: an int entry needs whole low and high, got {spec['low']}, {spec['high']}.")
        if not low < high:
            raise PodiumError(f"{where}: low ({spec['low']}) must be below high ({spec['high']}).")
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and low <= 0):
            raise PodiumError(f"{where}: log must be true or false, and a log range needs low > 0.")
        step = _number(spec["step"], where, "step") if spec.get("step") is not None else None
        param = Param(key, kind, low, high, log, step)
        values = [int(low), int(high)] if kind == "int" else [low, high]
    for value in values:
        merge(base, [f"{key}={value}"])  # an unknown key or a value the key does not accept fails here, named
    return param


def suggest(trial: Any, param: Param) -> Any:
    """The trial's value for ``param``."""
    if param.type == "categorical":
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.type == "int":
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


def storage_url(storage: str, base: PodiumConfig) -> str:
    """The study's storage: the URL given, or an SQLite file in the runs root."""
    if storage:
        return storage
    root = Path(base.run.root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'optuna.db'}"


def search(data_dir: str | Path, base: PodiumConfig, space: str | Path, trials: int, storage: str = "",
           study: str = "") -> dict[str, Any]:
    """Run trials of the study until it holds ``trials`` finished ones (with other processes, if they share it);
    return the best trial: {number, value, params, run_dir, metric}."""
    optuna = optuna_module()
    from podium.data.ingest import load_competition

    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise PodiumError(f"Data folder {data_dir} does not exist.")
    if trials < 1:
        raise PodiumError(f"--trials must be at least 1, got {trials}.")
    params = read_space(space, base)
    primary = load_competition(data_dir, base.data, check=False).task.primary
    name = study or f"{data_dir.name}-search"
    url = storage_url(storage, base)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    the_study = optuna.create_study(
        study_name=name, storage=optuna.storages.RDBStorage(url, engine_kwargs=engine), direction="maximize",
        sampler=optuna.samplers.TPESampler(), pruner=optuna.pruners.MedianPruner(), load_if_exists=True)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    finished = len(the_study.get_trials(deepcopy=False, states=done))
    if finished < trials:
        the_study.optimize(lambda t: objective(t, data_dir, base, params, primary, name), n_trials=trials - finished,
                           catch=(PodiumError, RuntimeError),
                           callbacks=[optuna.study.MaxTrialsCallback(trials, states=done)])
    try:
        best = the_study.best_trial
    except ValueError:
        raise PodiumError(f"Study {name} has no finished trial yet (every trial failed or was pruned).") from None
    return {"study": name, "storage": url, "number": best.number, "value": best.value, "params": best.params,
            "run_dir": best.user_attrs.get("run_dir", ""), "metric": primary}


def objective(trial: Any, data_dir: Path, base: PodiumConfig, params: list[Param], primary: str, study: str) -> float:
    """One trial: a run with the trial's values; fold 0's per-epoch validation metric is reported for pruning."""
    import optuna

    from podium.pipeline import train

    values = {p.key: suggest(trial, p) for p in params}
    cfg = merge(base, [*(f"{k}={v}" for k, v in values.items()), f"run.name={study}-t{trial.number}"])
    trial.set_user_attr("pid", os.getpid())

    def report(fold: int, row: dict) -> None:
        if fold != 0:
            return
        trial.report(float(row[primary]), step=int(row["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} of fold 0 ({primary} {row[primary]:.4f})")

    run = train(data_dir, cfg, on_epoch=report)
    trial.set_user_attr("run_dir", str(run.path))
    return float(run.metrics["cv_score"])


def train_command(data_dir: str | Path, config: str | Path | None, overrides: list[str] | tuple[str, ...],
                  params: dict[str, Any]) -> str:
    """``podium train DATA_DIR [--config FILE] overrides... best values...`` as one shell line."""
    kept = [o for o in overrides if o.split("=", 1)[0].strip() not in params]  # the trial's value wins
    parts = ["podium", "train", str(data_dir), *(["--config", str(config)] if config else []), *kept,
             *(f"{k}={v}" for k, v in params.items())]
    return " ".join(shlex.quote(p) for p in parts)
