"""``search``: hyper-parameter search with Optuna, each trial an ordinary run.

    read_space   a YAML file: ``section.key: {type: float|int|categorical, low, high, log, step, choices}``; every
                 key, type and bound checked (like a config override) before anything runs
    search       the space, the storage URL and the data (``pipeline.plan_run``) checked, then a study (TPE sampler,
                 median pruner on fold 0's per-epoch validation metric) in an RDB storage: by default
                 ``<run.root>/optuna.db`` (SQLite, created under a file lock so that processes starting together do
                 not race); any Optuna storage URL lets several processes or machines work on one study, each trial
                 claimed by one of them. ``trials`` caps the study's finished trials; ``jobs`` runs that many worker
                 processes here, the CPU cores divided between them; ``ray`` runs each trial as a Ray task, asked and
                 told on this process (``fanout.search_trials``). A pruned trial's run is marked ``pruned``.
    train_command  the best trial as a ready ``podium train`` command line
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from podium.config import PodiumConfig, from_dict, merge, to_dict
from podium.config_checks import read_yaml
from podium.core.errors import PodiumError, install_hint
from podium.core.io import existing_file
from podium.multirun.sweep import in_processes, worker_threads
from podium.runs.lifecycle import Pruned
from podium.tasks.metrics import get_metric
from podium.validation import validate

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
        raise PodiumError(f"podium search needs Optuna: {install_hint('search')}.") from None
    return optuna


def read_space(path: str | Path, base: PodiumConfig) -> list[Param]:
    """The search space of a YAML file, every entry checked against the config."""
    p = existing_file(path, "Search space file")
    raw = read_yaml(p.read_text(encoding="utf-8"), f"Search space file {p}")
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
        validate(merge(base, [f"{key}={value}"]))  # an unknown key or a value the key does not accept fails here, named
    return param


def suggest(trial: Any, param: Param) -> Any:
    """The trial's value for ``param``."""
    if param.type == "categorical":
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.type == "int":
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


def storage_url(storage: str, base: PodiumConfig) -> str:
    """The study's storage: the URL given, or an SQLite file in the runs root (the root is not created here)."""
    if storage:
        return storage
    return f"sqlite:///{Path(base.run.root).expanduser().resolve() / 'optuna.db'}"


VALID_STORAGE = ("give e.g. sqlite:///path/to/optuna.db or postgresql://user:password@host/db (or leave it out for "
                 "optuna.db in the runs root)")


def check_storage_url(storage: str) -> None:
    """``--storage`` must be an SQLAlchemy URL of a known database, checked before the data or anything is touched."""
    if not storage:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(storage).get_dialect()  # NoSuchModuleError (an ArgumentError) for an unknown database name
    except (ArgumentError, ValueError) as e:
        raise PodiumError(f"--storage {storage!r} is not a database URL Optuna can use ({str(e).splitlines()[0]}); "
                          f"{VALID_STORAGE}.") from None


@contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<file>.lock`` beside an SQLite storage while the study is opened.

    Optuna creates its tables when it first opens a storage, and two processes doing that at once on a fresh
    database collide ("table ... already exists", optuna issue #1092; Optuna's answer: create the storage before
    the workers start). The lock (filelock, so Windows too) makes the first opener create them while the others
    wait. Other databases get ``open_study``'s retries instead.
    """
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if target.get_backend_name() != "sqlite" or target.database in (None, "", ":memory:"):
        yield
        return
    path = Path(target.database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the runs root, on a first search
    except OSError as e:
        raise PodiumError(f"Cannot create the folder of the study storage {url}: {e}.") from None
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire()
    except OSError as e:  # a folder the user cannot write (PermissionError), a folder where the lock file goes
        raise PodiumError(f"Cannot lock the study storage {url}: {e.strerror or e} ({path}.lock); give --storage a "
                          "file in a folder you can write.") from None
    try:
        yield
    finally:
        lock.release()


def open_study(optuna: Any, url: str, name: str, create: bool, direction: str = "maximize") -> Any:
    """The study ``name`` in the storage ``url`` (created if ``create`` and missing), its tables made under
    ``storage_lock``; a storage that cannot be opened is one line naming it. ``direction`` is the metric's
    (``cv.metric=log_loss`` minimises)."""
    from sqlalchemy.exc import DBAPIError

    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 60}} if sqlite else {}
    # SQLite is serialised by the lock; a server may see several processes start at once
    tries = 1 if sqlite else 5
    extra = {"direction": direction, "load_if_exists": True} if create else {}
    failure = ""
    for attempt in range(tries):
        try:
            with storage_lock(url):
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine)
                return (optuna.create_study if create else optuna.load_study)(
                    study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(),
                    pruner=optuna.pruners.MedianPruner(), **extra)
        except ImportError as e:  # the database's driver (psycopg2, PyMySQL, ...) is not installed
            raise PodiumError(f"--storage {url}: {str(e).splitlines()[0]} (its Python driver is missing).") from None
        except DBAPIError as e:  # OperationalError, IntegrityError, ProgrammingError: unreachable, or a race
            failure = str(e.orig or e).splitlines()[0]
            if attempt + 1 < tries:
                time.sleep(0.5 * 2**attempt)
    raise PodiumError(f"Cannot open the study storage {url} ({failure}); check --storage: {VALID_STORAGE}.")


class _NoTraceback(logging.Filter):
    """Optuna logs a failed trial with its traceback; a PodiumError (a user's mistake that only some trials hit,
    e.g. a cv.folds value of the space) reads better as the one line it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PodiumError):
            record.exc_info = None
        return True


def quiet_optuna(optuna: Any) -> None:
    """Warnings only, and no traceback for a trial that failed on a PodiumError."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


def first_values(params: list[Param]) -> list[str]:
    """Overrides giving every parameter a value a trial can draw (its low end or first choice)."""
    return [f"{p.key}={p.choices[0] if p.type == 'categorical' else int(p.low) if p.type == 'int' else p.low}"
            for p in params]


def search(data_dir: str | Path, base: PodiumConfig, space: str | Path, trials: int, storage: str = "",
           study: str = "", jobs: int = 1, ray: Any = None) -> dict[str, Any]:
    """Run trials of the study until it holds ``trials`` finished ones (with other processes, if they share it);
    return the best trial: {number, value, params, run_dir, metric}.

    Every check of the user's input (the space file, --storage, the data folder through ``pipeline.plan_run``)
    comes before the storage or any folder exists. ``jobs`` > 1 runs the trials in that many processes on the
    shared storage, the CPU cores divided between them (``train.threads``), as ``podium sweep --jobs`` does.
    ``ray`` (a ``fanout.RayOptions``): the study stays here and each trial's run is a Ray task.
    """
    optuna = optuna_module()
    from podium.pipeline import plan_run

    data_dir = _check_request(data_dir, trials, jobs)
    params = read_space(space, base)
    check_storage_url(storage)
    # Data-level mistakes (too many folds, bad images) would otherwise fail every trial, one traceback each
    plan = plan_run(data_dir, validate(merge(base, first_values(params))), None)
    primary = plan.comp.task.primary
    name = study or f"{data_dir.name}-search"
    url = storage_url(storage, base)
    quiet_optuna(optuna)
    direction = "maximize" if get_metric(primary).greater_is_better else "minimize"
    the_study = open_study(optuna, url, name, create=True, direction=direction)
    remaining = trials - len(the_study.get_trials(deepcopy=False, states=finished(optuna)))
    if remaining > 0 and ray is not None:
        from podium.multirun.fanout import search_trials

        search_trials(the_study, data_dir, base, params, remaining, ray)
    elif remaining > 0 and jobs == 1:
        optimize(the_study, data_dir, base, params, primary, trials, remaining)
    elif remaining > 0:
        _optimize_in_processes((str(data_dir), to_dict(base), params, primary, url, name, trials), remaining, jobs)
    return _best(the_study, name, url, primary)


def _check_request(data_dir: str | Path, trials: int, jobs: int) -> Path:
    """The data folder, resolved, once it and the counts are checked."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise PodiumError(f"Data folder {data_dir} does not exist.")
    if trials < 1:
        raise PodiumError(f"--trials must be at least 1, got {trials}.")
    if jobs < 1:
        raise PodiumError(f"--jobs must be at least 1, got {jobs}.")
    return data_dir


def _optimize_in_processes(study_args: tuple[Any, ...], remaining: int, jobs: int) -> None:
    """``remaining`` trials shared between ``jobs`` processes on the shared storage, the CPU cores divided between
    them; ``study_args``: ``optimize_in_worker``'s arguments before each worker's share and threads."""
    threads = worker_threads(jobs)
    shares = [n for n in (remaining // jobs + (i < remaining % jobs) for i in range(jobs)) if n]
    calls = [(*study_args, n, threads) for n in shares]
    for _, future in in_processes(optimize_in_worker, calls, len(shares)):
        future.result()


def _best(the_study: Any, name: str, url: str, primary: str) -> dict[str, Any]:
    """The study's best trial as ``search`` returns it."""
    try:
        best = the_study.best_trial
    except ValueError:
        raise PodiumError(f"Study {name} has no finished trial yet (every trial failed or was pruned).") from None
    return {"study": name, "storage": url, "number": best.number, "value": best.value, "params": best.params,
            "run_dir": best.user_attrs.get("run_dir", ""), "metric": primary}


def optimize(the_study: Any, data_dir: Path, base: PodiumConfig, params: list[Param], primary: str, trials: int,
             n_trials: int) -> None:
    """Run up to ``n_trials`` trials, stopping once the study holds ``trials`` finished ones (whoever ran them)."""
    import optuna

    the_study.optimize(lambda t: objective(t, data_dir, base, params, primary, the_study.study_name),
                       n_trials=n_trials, catch=(PodiumError, RuntimeError),
                       callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished(optuna))])


def finished(optuna: Any) -> tuple[Any, ...]:
    """The trial states that count towards ``trials``: complete and pruned (a failed trial does not count, so the
    same command run again tries more)."""
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def optimize_in_worker(data_dir: str, raw_cfg: dict[str, Any], params: list[Param], primary: str, url: str,
                       name: str, trials: int, n_trials: int, threads: int) -> None:
    """``optimize`` in a worker process of ``search(jobs=N)``: the study loaded from its (already created) storage,
    and ``threads`` torch threads unless the config sets train.threads."""
    optuna = optuna_module()
    cfg = from_dict(raw_cfg)
    if cfg.train.threads == 0:
        cfg = merge(cfg, [f"train.threads={threads}"])
    quiet_optuna(optuna)
    optimize(open_study(optuna, url, name, create=False), Path(data_dir), cfg, params, primary, trials, n_trials)


def objective(trial: Any, data_dir: Path, base: PodiumConfig, params: list[Param], primary: str, study: str) -> float:
    """One trial: a run with the trial's values; fold 0's per-epoch validation metric is reported for pruning, and a
    pruned trial's run is marked ``pruned``."""
    import optuna

    from podium.pipeline import train

    values = {p.key: suggest(trial, p) for p in params}
    cfg = validate(merge(base, [*(f"{k}={v}" for k, v in values.items()), f"run.name={study}-t{trial.number}"]))
    trial.set_user_attr("pid", os.getpid())

    def report(fold: int, row: dict) -> None:
        if fold != 0:
            return
        trial.report(float(row[primary]), step=int(row["epoch"]))
        if trial.should_prune():
            raise Pruned(f"pruned after epoch {row['epoch']} of fold 0 ({primary} {row[primary]:.4f})")

    try:
        run = train(data_dir, cfg, on_epoch=report)
    except Pruned as e:  # the run is marked pruned by its lifecycle; Optuna marks the trial so on TrialPruned
        raise optuna.TrialPruned(str(e)) from None
    trial.set_user_attr("run_dir", str(run.path))
    return float(run.metrics["cv_score"])


def train_command(data_dir: str | Path, config: str | Path | None, overrides: list[str] | tuple[str, ...],
                  params: dict[str, Any]) -> str:
    """``podium train DATA_DIR [--config FILE] overrides... best values...`` as one shell line."""
    kept = [o for o in overrides if o.split("=", 1)[0].strip() not in params]  # the trial's value wins
    parts = ["podium", "train", str(data_dir), *(["--config", str(config)] if config else []), *kept,
             *(f"{k}={v}" for k, v in params.items())]
    return " ".join(shlex.quote(p) for p in parts)
