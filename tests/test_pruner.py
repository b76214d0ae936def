from __future__ import annotations

import optuna
import pytest

from optuna_sosae import SOSAEPruner
from optuna_sosae import _attrs


def test_settles_only_on_a_held_binding_width_below_the_generous_one() -> None:
    pruner = SOSAEPruner(patience=3)
    assert pruner.settled([9, 6, 6, 6], [False, True, True, True], upper=16)
    assert not pruner.settled([9, 9, 6, 6], [True] * 4, upper=16)  # width held 2 epochs
    assert not pruner.settled([6, 6, 6, 6], [True, True, False, True], upper=16)  # not binding
    assert not pruner.settled([16] * 4, [True] * 4, upper=16)  # every unit still in use
    assert not pruner.settled([6, 6], [True, True], upper=16)  # shorter than the patience


def test_a_fading_last_unit_keeps_the_probe_running() -> None:
    # The sixth unit of a probe on 5-factor data: its width holds at 6 while it fades from
    # 29% to 9% of the strongest unit's activity (the numbers of a measured probe).
    widths, binding = [6] * 8, [True] * 8
    fading = [0.287, 0.302, 0.285, 0.254, 0.186, 0.135, 0.123, 0.086]
    steady = [0.058, 0.061, 0.064, 0.064, 0.064, 0.063, 0.063, 0.062]
    pruner = SOSAEPruner()
    assert not pruner.settled(widths, binding, 32, tail=fading)
    assert pruner.settled(widths, binding, 32, tail=steady)
    assert pruner.settled(widths, binding, 32)  # no tail record: the condition is not checked
    assert SOSAEPruner(fading=0.0).settled(widths, binding, 32, tail=fading)
    # Only the patience window counts: a unit that faded before it and then held is settled.
    assert SOSAEPruner(patience=3).settled(widths, binding, 32, tail=fading[:4] + [0.1] * 4)


def test_prune_reads_the_stored_record_with_or_without_the_tail() -> None:
    study = optuna.create_study()
    trial = study.ask()
    storage, trial_id = study._storage, trial._trial_id
    storage.set_trial_system_attr(trial_id, _attrs.SYS_ROLE, _attrs.PROBE)
    pruner = SOSAEPruner(patience=2)
    frozen = study._storage.get_trial(trial_id)
    assert not pruner.prune(study, frozen)  # nothing recorded yet

    storage.set_trial_system_attr(trial_id, _attrs.SYS_TRAJECTORY, [[7, 7], [True, True], 16])
    assert pruner.prune(study, storage.get_trial(trial_id))
    record = [[7, 7], [True, True], 16, [0.4, 0.1]]
    storage.set_trial_system_attr(trial_id, _attrs.SYS_TRAJECTORY, record)
    assert not pruner.prune(study, storage.get_trial(trial_id))


@pytest.mark.parametrize("fading", [-0.1, 1.0, True, "0.5"])
def test_bad_fading_is_named(fading: object) -> None:
    with pytest.raises(ValueError, match=r"fading must be a number in \[0, 1\), got"):
        SOSAEPruner(fading=fading)  # type: ignore[arg-type]
