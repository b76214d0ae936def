"""Command line: ``optuna-sosae tune`` and ``optuna-sosae compare``.

The CLI is the only part of the package that prints. Bad input exits with status 2 and one
line naming the problem; a run that cannot find a width exits with status 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import logging
import math
from pathlib import Path
import sys
import time
from typing import Any
from typing import NoReturn

import optuna
import torch

from optuna_sosae import _attrs
from optuna_sosae import dashboard
from optuna_sosae._pruner import SOSAEPruner
from optuna_sosae._sampler import NoConvergedWidthError
from optuna_sosae._sampler import SOSAESampler
from optuna_sosae._storage import heartbeat_storage
from optuna_sosae.data import Dataset
from optuna_sosae.data import load_digits
from optuna_sosae.data import load_file
from optuna_sosae.data import make_linear
from optuna_sosae.models import save_model
from optuna_sosae.training import DEFAULT_TOLERANCE
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig
from optuna_sosae.training import downstream_accuracy
from optuna_sosae.visualization import plot_width_trajectory


_logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///optuna-sosae.db"
FINGERPRINT = "sosae_fingerprint"


# Seconds to wait for a database server to answer before giving up on the URL.
CONNECT_TIMEOUT = 10
# Attempts at opening a storage whose tables another worker is creating at the same moment,
# and the words of the database errors that mean exactly that race.
_OPEN_ATTEMPTS = 3
_RACE_WORDS = ("already exists", "duplicate")
# Epochs between progress lines when stderr is not a terminal.
_LOG_EVERY = 10


class UsageError(Exception):
    """Bad input from the command line; reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse adds the usage text)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset",
        choices=("digits", "synthetic"),
        help="bundled data: scikit-learn's handwritten digits (default) or a linear mixture of "
        "5 factors into 40 features (known intrinsic dimension 5)",
    )
    source.add_argument(
        "--data", type=Path, help="your own data: .npz with X (and optional y), .npy or .csv"
    )
    parser.add_argument(
        "--max-dim",
        type=_positive_int,
        default=64,
        help="generous width the probe starts from, the upper bound of the search (default 64)",
    )
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"Optuna storage URL (default {DEFAULT_STORAGE}, in the working directory)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and training")
    parser.add_argument(
        "--tolerance",
        type=_fraction,
        default=DEFAULT_TOLERANCE,
        help="share of the data's variance the tuned model may leave unexplained beyond what "
        "the full width leaves; the probe keeps its own loss within this share of the variance, "
        f"a little stricter (default {DEFAULT_TOLERANCE})",
    )
    parser.add_argument("--epochs", type=_positive_int, default=60, help="epochs per trial")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="optuna-sosae",
        description="Tune an autoencoder's latent width with SOSAE on Optuna.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress in detail")
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser(
        "tune", help="find the latent width with one probe, then train a model at that width"
    )
    add_data_arguments(tune)
    tune.add_argument("--study-name", help="study to create or join (default: sosae-<data>)")
    tune.add_argument("--output", type=Path, help="save the tuned model here (load_model)")
    tune.set_defaults(handler=run_tune, printer=print_summary)
    compare = commands.add_parser(
        "compare",
        help="measure SOSAE against grid search and TPE on the same data, budget and FLOP meter",
    )
    add_data_arguments(compare)
    compare.add_argument(
        "--baselines",
        type=_baselines,
        default=("grid", "tpe"),
        help="comma-separated baselines to run: grid, tpe (default grid,tpe)",
    )
    compare.add_argument(
        "--grid",
        choices=("full", "pow2"),
        default="full",
        help="grid of widths: every width 1..max-dim (full, default) or powers of two",
    )
    compare.add_argument(
        "--tpe-seeds",
        type=_positive_int,
        default=5,
        help="TPE runs with different sampler seeds; the median run is reported (default 5)",
    )
    compare.add_argument(
        "--tpe-budget",
        type=_positive_int,
        help="trials per TPE run, its max-dim trial included (default: the grid's size)",
    )
    compare.add_argument(
        "--final-seeds",
        type=_positive_int,
        default=3,
        help="fresh models trained at each chosen width for loss and accuracy (default 3)",
    )
    compare.add_argument(
        "--study-prefix", help="study names start with this (default: compare-<data>)"
    )
    compare.add_argument(
        "--overwrite",
        action="store_true",
        help="delete earlier studies of the same names instead of refusing to run",
    )
    compare.add_argument(
        "--report", type=Path, help="write a self-contained HTML page with the figures here"
    )
    compare.set_defaults(handler=run_compare, printer=print_comparison)
    return parser


def _baselines(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in ("grid", "tpe")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of grid and tpe, got {text!r}"
        )
    return tuple(dict.fromkeys(names))


def load_dataset(args: argparse.Namespace) -> Dataset:
    if args.data is not None:
        return load_file(args.data, seed=args.seed)
    if args.dataset == "synthetic":
        return make_linear(seed=args.seed)
    return load_digits(seed=args.seed)


def check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")
        return device
    raise UsageError(f"--device must be cpu or cuda, got {device!r}")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open an RDB storage with a heartbeat, so that a killed worker's trial is failed."""
    if "://" not in url:
        raise UsageError(f"--storage {url!r} is not a database URL (e.g. sqlite:///file.db)")
    attempt = 1
    while True:
        try:
            return _rdb_storage(url)
        except Exception as err:  # SQLAlchemy raises many kinds; all mean "cannot use this URL".
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            # Workers started together on an empty database race to create Optuna's tables;
            # those that lose find the tables in place on the next attempt.
            if attempt < _OPEN_ATTEMPTS and any(w in message.lower() for w in _RACE_WORDS):
                _logger.info("Optuna's tables were being created by another worker; retrying.")
                time.sleep(0.5 * attempt)
                attempt += 1
                continue
            raise UsageError(f"cannot open storage {url!r}: {message}") from None


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    _check_answers(url)
    return heartbeat_storage(url, engine_kwargs=_engine_kwargs(url))


def _check_answers(url: str) -> None:
    # PyMySQL applies connect_timeout to the TCP connect only, then waits without limit for
    # the server's greeting: a port that accepts and stays silent would hang the CLI. One
    # short connection with a read timeout finds such a server before Optuna connects (the
    # storage itself keeps no read timeout: a query may rightly wait on a lock).
    if _backend(url) not in ("mysql", "mariadb"):
        return
    import sqlalchemy

    args = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": CONNECT_TIMEOUT}
    engine = sqlalchemy.create_engine(url, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _backend(url: str) -> str:
    # "postgresql+psycopg2://..." -> "postgresql": the dialect, without the driver.
    return url.split(":", 1)[0].split("+", 1)[0]


def _engine_kwargs(url: str) -> dict[str, Any] | None:
    backend = _backend(url)
    if backend == "sqlite":
        return None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    # Without a timeout an unreachable host keeps the CLI waiting for minutes (the operating
    # system's TCP timeout); both drivers we support take the option by this name.
    if backend in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in url:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return kwargs


def check_fingerprint(study: optuna.Study, fingerprint: dict[str, Any]) -> None:
    """Record what the study was tuned on; refuse to mix other data or ranges into it."""
    stored = study.user_attrs.get(FINGERPRINT)
    if stored is None:
        study.set_user_attr(FINGERPRINT, fingerprint)
        return
    different = sorted(k for k in fingerprint if stored.get(k) != fingerprint[k])
    if different:
        details = ", ".join(
            f"{k}: stored {stored.get(k)!r}, given {fingerprint[k]!r}" for k in different
        )
        raise UsageError(
            f"study {study.study_name!r} was tuned on other settings ({details}); "
            "use another --study-name"
        )


def run_tune(args: argparse.Namespace) -> dict[str, Any]:
    device = check_device(args.device)
    try:
        dataset = load_dataset(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    storage = open_storage(args.storage)
    study_name = args.study_name or f"sosae-{dataset.name}"
    sampler = SOSAESampler("latent_dim", seed=args.seed)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        pruner=SOSAEPruner(),
        load_if_exists=True,
    )
    check_fingerprint(
        study,
        {
            "data": dataset.fingerprint,
            "model": "mlp-128",
            "latent_range": [1, args.max_dim],
            "tolerance": args.tolerance,
            "epochs": args.epochs,
        },
    )
    config = TrainingConfig(epochs=args.epochs, device=device)
    show_progress = not args.json
    # On a terminal one line is rewritten in place; in a log file (CI, a batch job) a line
    # is added every few epochs instead, so the log stays readable.
    live = sys.stderr.isatty()

    def progress(trial_number: int, role: str, epoch: int, val_loss: float) -> None:
        if not show_progress or not (live or epoch % _LOG_EVERY == 0 or epoch == 1):
            return
        line = (
            f"  trial {trial_number} ({role}) epoch {epoch}/{config.epochs} "
            f"val_loss {val_loss:.4g}"
        )
        if live:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    objective = SOSAEObjective(
        dataset,
        max_dim=args.max_dim,
        config=config,
        tolerance=args.tolerance,
        seed=args.seed,
        progress=progress,
    )
    started = time.perf_counter()

    def stop_after_tuned(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if show_progress and live:
            print(file=sys.stderr)
        if trial.number in objective.models:
            study.stop()
        else:
            # Stop before a trial that could only fail (Optuna would log its traceback).
            sampler.check_probe_budget(study)

    sampler.check_probe_budget(study)
    study.optimize(
        objective,
        n_trials=sampler.max_probes + 1,
        callbacks=[stop_after_tuned],
        catch=(),
    )
    wall = time.perf_counter() - started
    if not objective.models:
        raise NoConvergedWidthError("no tuned trial finished in this run")
    number, model = sorted(objective.models.items())[-1]
    tuned = study.trials[number]
    trials = study.get_trials(deepcopy=False)
    summary = {
        "latent_dim": _attrs.tuned_latent_dim(study),
        "flops_tuning": _attrs.sum_flops(
            [t for t in trials if t.user_attrs.get(_attrs.ROLE) == _attrs.PROBE]
        ),
        "flops_total": _attrs.sum_flops(trials),
        "val_loss": tuned.value,
        "downstream_accuracy": downstream_accuracy(model, dataset, seed=args.seed),
        "max_dim": args.max_dim,
        "tolerance": args.tolerance,
        "baseline_loss": dataset.baseline_loss,
        "dataset": dataset.name,
        "study_name": study.study_name,
        "storage": args.storage,
        "tuned_trial": number,
        "wall_seconds": round(wall, 3),
    }
    dashboard.publish(
        study,
        figures={"width-trajectory": plot_width_trajectory(study)},
        note=dashboard.tune_note(
            study,
            max_dim=args.max_dim,
            tolerance=args.tolerance,
            val_loss=tuned.value,
            baseline_loss=dataset.baseline_loss,
            downstream_accuracy=summary["downstream_accuracy"],
            tuned_trial=number,
        ),
    )
    if args.output is not None:
        offset, scale = dataset.input_map()
        save_model(
            model,
            args.output,
            **{k: v for k, v in summary.items() if k != "storage"},
            preprocessing=dataset.preprocessing,
            # Raw features map to the model's input as (x - input_offset) / input_scale.
            input_offset=offset.tolist(),
            input_scale=scale.tolist(),
        )
        summary["output"] = str(args.output)
    return summary


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    from optuna_sosae.compare import compare
    from optuna_sosae.visualization import publish_comparison
    from optuna_sosae.visualization import report_html

    device = check_device(args.device)
    try:
        dataset = load_dataset(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.report is not None and not args.report.parent.is_dir():
        raise UsageError(f"--report {str(args.report)!r}: folder does not exist")
    storage = open_storage(args.storage)
    show_progress = not args.json

    def progress(message: str) -> None:
        if show_progress:
            print(f"  {message}", file=sys.stderr, flush=True)

    try:
        comparison = compare(
            dataset,
            storage=storage,
            baselines=args.baselines,
            max_dim=args.max_dim,
            config=TrainingConfig(epochs=args.epochs, device=device),
            tolerance=args.tolerance,
            seed=args.seed,
            grid=args.grid,
            tpe_seeds=args.tpe_seeds,
            tpe_budget=args.tpe_budget,
            final_seeds=args.final_seeds,
            study_prefix=args.study_prefix,
            overwrite=args.overwrite,
            progress=progress,
        )
    except ValueError as err:
        if "already exist" in str(err):
            raise UsageError(f"{err} (--study-prefix, --overwrite)") from None
        raise
    summary = comparison.to_dict()
    summary["storage"] = args.storage
    summary["dashboard"] = publish_comparison(comparison, storage)
    if args.report is not None:
        args.report.write_text(report_html(comparison), encoding="utf-8")
        summary["report"] = str(args.report)
    return summary


def print_comparison(summary: dict[str, Any]) -> None:
    from optuna_sosae.compare import result_rows

    rows = result_rows(summary)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    criterion = summary["criterion"]
    lines = [
        f"Criterion: smallest width with val loss <= loss at width {summary['max_dim']} + "
        f"{criterion['tolerance']} x baseline loss {criterion['baseline_loss']:.4g}"
        + (
            f" = {criterion['target_loss']:.4g} (grid's answer: {criterion['reference_width']})"
            if criterion["target_loss"] is not None
            else ""
        ),
        "",
    ]
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append("")
    lines.append("Targets:")
    for check in summary["targets"]:
        met = {True: "met", False: "NOT met", None: "n/a"}[check["met"]]
        lines.append(
            f"  {check['name']}: {_cell(check['measured'], '.3g')} (want {check['target']}) {met}"
        )
    lines.append(
        f"Studies {', '.join(summary['settings']['studies'])} in {summary['storage']} "
        f"(open them with: optuna-dashboard {summary['storage']})"
    )
    if "report" in summary:
        lines.append(f"Report written to {summary['report']}")
    print("\n".join(lines))


def _cell(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_summary(summary: dict[str, Any]) -> None:
    accuracy = summary["downstream_accuracy"]
    lines = [
        f"Tuned latent width: {summary['latent_dim']} (of at most {summary['max_dim']}, "
        f"tolerance {summary['tolerance']})",
        f"Validation loss at that width: {summary['val_loss']:.5g} "
        f"({summary['val_loss'] / summary['baseline_loss']:.2%} of the data's variance)",
        "Downstream accuracy (logistic regression on the codes): "
        + ("n/a (no labels)" if accuracy is None else f"{accuracy:.1%}"),
        f"FLOPs: {summary['flops_tuning']:.3g} to find the width, "
        f"{summary['flops_total']:.3g} in the study",
        f"Study {summary['study_name']!r} in {summary['storage']} "
        f"(open it with: optuna-dashboard {summary['storage']})",
    ]
    if "output" in summary:
        lines.append(f"Model saved to {summary['output']}")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Optuna logs a failed trial with its traceback at WARNING; the CLI reports errors itself.
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.ERROR)
    try:
        summary = args.handler(args)
    except UsageError as err:
        print(f"optuna-sosae: error: {err}", file=sys.stderr)
        return 2
    except NoConvergedWidthError as err:
        print(f"optuna-sosae: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, default=_json_default))
    else:
        args.printer(summary)
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
