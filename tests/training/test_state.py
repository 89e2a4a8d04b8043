"""The paper's epoch semantics, driven by fake validation-loss sequences (no network)."""

from __future__ import annotations

import math

import pytest

from tausynth.losses.schedule import plane_at_epoch, switch_epochs
from tausynth.training.state import PaperSchedule, TrainingState


def run(schedule: PaperSchedule, losses: list[float]) -> tuple[TrainingState, list]:
    state, decisions = TrainingState(), []
    for epoch, loss in enumerate(losses):
        schedule.begin_epoch(state, epoch)
        decisions.append(schedule.end_epoch(state, epoch, loss))
        if decisions[-1].stop:
            break
    return state, decisions


def test_counting_starts_at_the_third_axial_phase() -> None:
    sched = PaperSchedule(1000, 120, "2/3", patience=30)
    assert sched.counting_from == 600
    # T = 3 without shrinking: axial phases start at 0, 9, 18, 27
    sched = PaperSchedule(30, 3, "1", patience=2)
    assert switch_epochs(30, 3, "1")["axial"] == [0, 9, 18, 27]
    assert sched.counting_from == 18


def test_plane_follows_algorithm_2_and_starts_axial() -> None:
    sched = PaperSchedule(24, 3, "2/3", patience=5)
    state, decisions = run(sched, [1.0] * 24)
    assert decisions[0].plane == "axial"
    assert [d.plane for d in decisions] == [plane_at_epoch(e, 24, 3, "2/3") for e in range(24)]
    assert state.epoch == 24 and state.stopped == "max_epochs"


def test_best_is_reset_at_every_plane_switch() -> None:
    sched = PaperSchedule(30, 3, "1", patience=2)
    #         axial 0-2        coronal 3-5      sagittal 6-8
    losses = [5.0, 4.0, 3.0, 9.0, 8.5, 8.7, 7.0, 7.5, 6.0]
    state, d = run(sched, losses)
    # epoch 3 is worse than every axial epoch but starts the coronal phase: it is the new best
    assert [x.improved for x in d] == [True, True, True, True, True, False, True, False, True]
    assert [x.phase_start for x in d] == [True, False, False, True, False, False, True, False, False]
    assert state.best_val == 6.0 and state.best_epoch == 8
    assert state.patience_counter == 0  # nothing counted before epoch 18


def test_patience_counts_only_from_axial_starts_2() -> None:
    sched = PaperSchedule(30, 3, "1", patience=2)
    # improve at each phase start, get worse inside every phase: 2 bad epochs per phase
    losses = []
    for phase in range(10):
        losses += [1.0 - 0.01 * phase, 2.0, 3.0]
    state, d = run(sched, losses)
    # epochs 1, 2, 4, 5, ... are bad but not counted; epoch 18 starts axial #3 (improves),
    # 19 and 20 are bad and counted: stop after epoch 20 exactly
    assert d[-1].epoch == 20 and d[-1].stop
    assert state.stopped == "early_stopping" and state.epoch == 21
    assert [x.counting for x in d[17:]] == [False, True, True, True]
    assert state.patience_counter == 2


def test_nan_never_improves_and_counts_from_the_boundary_epoch() -> None:
    sched = PaperSchedule(30, 3, "1", patience=2)
    losses = [1.0] * 18 + [math.nan, math.nan]
    state, d = run(sched, losses)
    assert not d[18].improved and d[18].counting  # epoch 18 == axial_starts[2] counts
    assert d[19].stop and state.epoch == 20


def test_short_runs_never_stop_early() -> None:
    sched = PaperSchedule(8, 3, "1", patience=1)  # axial phases start at 0 and 9 > 8: only one
    assert sched.counting_from is None
    state, d = run(sched, [float(e) for e in range(8)])  # always worse
    assert not any(x.stop for x in d) and state.stopped == "max_epochs"
    assert "never triggers" in sched.describe()["early_stopping_note"]


def test_state_round_trips_through_a_dict() -> None:
    state = TrainingState(epoch=3, plane="coronal", best_val=0.5, best_epoch=2, patience_counter=1, steps=9)
    assert TrainingState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize("patience", [1, 3])
def test_stop_epoch_depends_on_patience(patience: int) -> None:
    sched = PaperSchedule(40, 10, "1", patience=patience)  # axial 0, 30: counting never starts
    assert sched.counting_from is None
    sched = PaperSchedule(70, 5, "1", patience=patience)  # axial 0, 15, 30, 45, 60
    losses = [1.0] * 30 + [0.5] + [1.0] * 14
    state, d = run(sched, losses)
    assert d[-1].epoch == 30 + patience
