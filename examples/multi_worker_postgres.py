"""Several workers tune one latent width together, through a shared PostgreSQL storage.

Run (about half a minute with 4 workers on two laptop cores)::

    pip install "optuna-sosae[postgres]"
    python examples/multi_worker_postgres.py                     # the local server, 4 workers
    python examples/multi_worker_postgres.py postgresql+psycopg2://user@host/db --workers 8

Each worker is its own process, as it would be on its own machine: it opens the storage,
loads the study with a fresh ``SOSAESampler`` and ``SOSAEPruner`` (they keep no state of their
own: everything the workers must agree on is in the storage) and runs a plain
``study.optimize``. What happens:

- The workers that start before any probe has converged each run a probe, with the learning
  rate their own TPE drew: several probes at once explore different values.
- The first probe to *finish* with a converged width decides the tuned width for the whole
  study. Probes still running then stop at their next check, and every later trial of every
  worker trains at that width.
- Every finished trial has its ``flops``; the study's ``flops_total`` is their sum.

The storage comes from ``optuna_sosae.heartbeat_storage``: if a worker is killed, its running
trial is failed once the grace period (30 s) has passed and re-queued once
(``RetryHeartbeatStaleTrialCallback``), and the FLOPs it had written stay counted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import optuna

import optuna_sosae
from optuna_sosae.data import make_linear
from optuna_sosae.models import MLPAutoencoder
from optuna_sosae.training import TrainingConfig
from optuna_sosae.training import train


LOCAL_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DATA = make_linear(k=5, n_features=40, seed=0)  # 5 hidden factors in 40 features
MAX_DIM = 32
EPOCHS = 60


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-3, 4e-3, log=True)  # left to the base sampler (TPE)
    width = trial.suggest_int("latent_dim", 1, MAX_DIM)  # answered by SOSAE
    bridges: list[optuna_sosae.SOSAEBridge] = []

    def make_bridge(model: MLPAutoencoder) -> optuna_sosae.SOSAEBridge:
        bridges.append(
            optuna_sosae.SOSAEBridge(
                trial,
                decoder_weight=model.decoder_input.weight,
                baseline_loss=DATA.baseline_loss,
                max_epochs=EPOCHS,
            )
        )
        return bridges[-1]

    # The package's own training loop (examples/own_training_loop.py writes one out in full).
    config = TrainingConfig(epochs=EPOCHS, lr=lr)
    result = train(DATA, width, config, seed=trial.number, make_bridge=make_bridge)
    bridges[-1].finish()  # a probe still unsettled here ends out of budget
    return result.val_loss


def worker(url: str, study_name: str, n_trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=optuna_sosae.heartbeat_storage(url),
        sampler=optuna_sosae.SOSAESampler("latent_dim"),
        pruner=optuna_sosae.SOSAEPruner(),
    )
    study.optimize(objective, n_trials=n_trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage", nargs="?", default=LOCAL_SERVER, help="RDB storage URL")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--trials", type=int, default=2, help="trials per worker (default 2)")
    parser.add_argument("--study-name", default=f"sosae-workers-{int(time.time())}")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    # Create the study once before the workers start, as Optuna advises for distributed runs:
    # workers that all create it on a new database race to create its tables.
    optuna.create_study(
        study_name=args.study_name, storage=optuna_sosae.heartbeat_storage(args.storage)
    )
    context = multiprocessing.get_context("spawn")  # separate interpreters, like machines
    processes = [
        context.Process(target=worker, args=(args.storage, args.study_name, args.trials))
        for _ in range(args.workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} worker(s) failed with exit codes {failed}")

    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    print(f"study {args.study_name!r}: tuned latent width {optuna_sosae.tuned_latent_dim(study)}")
    for t in study.trials:
        print(
            f"  trial {t.number}: {t.user_attrs['sosae_role']:10} {t.state.name:8} "
            f"lr {t.params['lr']:.2e}  width {t.params['latent_dim']:2}  "
            f"{t.user_attrs['flops'] / 1e9:6.2f} GFLOPs  {t.system_attrs.get('sosae:outcome', '')}"
        )
    total = study.user_attrs["flops_total"]
    print(f"flops_total {total} (sum over trials {optuna_sosae.flops_total(study)})")


if __name__ == "__main__":
    main()
