"""The paper's epoch semantics, driven by fake validation-loss sequences (no network)."""

from __future__ import annotations

import math
import random

import pytest

from tausynth.config import load_profile
from tausynth.errors import TausynthError
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


@pytest.mark.parametrize(("rule", "paper", "short"), [("official", 601, 19), ("third_axial", 600, 18)])
def test_counting_starts_at_the_third_axial_phase(rule: str, paper: int, short: int) -> None:
    sched = PaperSchedule(1000, 120, "2/3", patience=30, early_stopping=rule)
    assert sched.counting_from == paper  # official: epoch > axial_starts[2] = 600
    # T = 3 without shrinking: axial phases start at 0, 9, 18, 27
    sched = PaperSchedule(30, 3, "1", patience=2, early_stopping=rule)
    assert switch_epochs(30, 3, "1")["axial"] == [0, 9, 18, 27]
    assert sched.counting_from == short
    assert sched.describe()["early_stopping"] == rule and rule in sched.describe()["early_stopping_note"]


def test_the_official_rule_is_the_default_and_others_are_rejected() -> None:
    assert PaperSchedule(30, 3, "1", patience=2).early_stopping == "official"
    with pytest.raises(TausynthError, match=r"'training\.early_stopping': unknown value 'never' \(allowed: official, third_axial\)"):
        PaperSchedule(30, 3, "1", patience=2, early_stopping="never")


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


@pytest.mark.parametrize(("rule", "counting"), [("official", [False, False, True, True]), ("third_axial", [False, True, True, True])])
def test_patience_counts_only_from_axial_starts_2(rule: str, counting: list[bool]) -> None:
    sched = PaperSchedule(30, 3, "1", patience=2, early_stopping=rule)
    # improve at each phase start, get worse inside every phase: 2 bad epochs per phase
    losses = []
    for phase in range(10):
        losses += [1.0 - 0.01 * phase, 2.0, 3.0]
    state, d = run(sched, losses)
    # epochs 1, 2, 4, 5, ... are bad but not counted; epoch 18 starts axial #3 (improves),
    # 19 and 20 are bad and counted: stop after epoch 20 exactly
    assert d[-1].epoch == 20 and d[-1].stop
    assert state.stopped == "early_stopping" and state.epoch == 21
    assert [x.counting for x in d[17:]] == counting  # epoch 18 improves either way
    assert state.patience_counter == 2


def test_nan_never_improves_and_counts_from_the_boundary_epoch() -> None:
    losses = [1.0] * 18 + [math.nan, math.nan]
    state, d = run(PaperSchedule(30, 3, "1", patience=2, early_stopping="third_axial"), losses)
    assert not d[18].improved and d[18].counting  # epoch 18 == axial_starts[2] counts
    assert d[19].stop and state.epoch == 20
    # the official rule counts only after axial_starts[2]: one NaN epoch counted, no stop yet
    state, d = run(PaperSchedule(30, 3, "1", patience=2), losses)
    assert not d[18].improved and not d[18].counting and d[19].counting
    assert not any(x.stop for x in d) and state.patience_counter == 1


def test_short_runs_never_stop_early_under_the_third_axial_rule() -> None:
    sched = PaperSchedule(8, 3, "1", patience=1, early_stopping="third_axial")  # axial phases start at 0 and 9 > 8: only one
    assert sched.counting_from is None
    state, d = run(sched, [float(e) for e in range(8)])  # always worse
    assert not any(x.stop for x in d) and state.stopped == "max_epochs"
    assert "never triggers" in sched.describe()["early_stopping_note"]


def test_short_runs_count_from_epoch_1_under_the_official_rule() -> None:
    sched = PaperSchedule(8, 3, "1", patience=1)  # one axial phase: the trigger epoch is 0
    assert sched.counting_from == 1
    state, d = run(sched, [float(e) for e in range(8)])  # always worse
    assert d[-1].epoch == 1 and d[-1].stop and state.stopped == "early_stopping"
    assert "fewer than 3 axial phases" in sched.describe()["early_stopping_note"]


def official_stop(losses: list[float], max_epochs: int, cycle_duration: int, factor: str, patience: int) -> int | None:
    """The official loop, written out: the 0-based epoch it stops after (None: it runs to the end)."""
    axial = switch_epochs(max_epochs, cycle_duration, factor)["axial"]
    starts = {e for es in switch_epochs(max_epochs, cycle_duration, factor).values() for e in es}
    trigger = axial[2] if len(axial) > 2 else 0
    best, counter = math.inf, 0
    for epoch, loss in enumerate(losses[:max_epochs]):
        if epoch in starts:  # a plane switch resets the best loss
            best = math.inf
        if loss < best:
            best, counter = loss, 0
        elif epoch > trigger:
            counter += 1
        if counter >= patience:
            return epoch
    return None


@pytest.mark.parametrize(
    ("rule", "stops_after"),
    [("official", 3), ("third_axial", None)],  # official: epochs 1, 2, 3 count; stop after the 4th epoch
)
def test_rising_loss_with_patience_3_in_a_15_epoch_run(rule: str, stops_after: int | None) -> None:
    losses = [float(e) for e in range(15)]  # every epoch worse than the one before
    assert switch_epochs(15, 4, "2/3")["axial"] == [0, 12]  # fewer than three axial phases
    state, d = run(PaperSchedule(15, 4, "2/3", patience=3, early_stopping=rule), losses)
    if stops_after is None:
        assert state.stopped == "max_epochs" and state.epoch == 15
    else:
        assert d[-1].epoch == stops_after == official_stop(losses, 15, 4, "2/3", 3)
        assert state.stopped == "early_stopping" and state.epoch == 4 and state.patience_counter == 3


@pytest.mark.parametrize("seed", range(20))
def test_official_rule_matches_the_official_loop(seed: int) -> None:
    rng = random.Random(seed)
    max_epochs, duration = rng.choice([(15, 4), (30, 3), (70, 5), (24, 2)])
    patience = rng.randint(1, 4)
    losses = [rng.random() for _ in range(max_epochs)]
    state, d = run(PaperSchedule(max_epochs, duration, "2/3", patience=patience), losses)
    expected = official_stop(losses, max_epochs, duration, "2/3", patience)
    assert (d[-1].epoch if state.stopped == "early_stopping" else None) == expected


@pytest.mark.parametrize("profile", ["smoke", "demo"])
def test_cpu_profiles_cannot_stop_early_under_the_official_rule(profile: str) -> None:
    # each phase's first epoch improves and resets the counter, and no phase is longer than the
    # patience: the official rule leaves these runs as they were (and so the book's demo runs)
    t = load_profile(profile).training
    assert t.early_stopping == "official"
    sched = PaperSchedule(t.max_epochs, t.cycle_duration, t.cycle_factor, t.patience, t.early_stopping)
    state, d = run(sched, [float(e) for e in range(t.max_epochs)])  # every epoch worse
    assert state.stopped == "max_epochs" and max(x.epoch for x in d) == t.max_epochs - 1


def test_state_round_trips_through_a_dict() -> None:
    state = TrainingState(epoch=3, plane="coronal", best_val=0.5, best_epoch=2, patience_counter=1, steps=9)
    assert TrainingState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize("rule", ["official", "third_axial"])
@pytest.mark.parametrize("patience", [1, 3])
def test_stop_epoch_depends_on_patience(patience: int, rule: str) -> None:
    sched = PaperSchedule(40, 10, "1", patience=patience, early_stopping=rule)  # axial 0, 30
    assert sched.counting_from == (1 if rule == "official" else None)
    sched = PaperSchedule(70, 5, "1", patience=patience, early_stopping=rule)  # axial 0, 15, 30, 45, 60
    losses = [1.0] * 30 + [0.5] + [1.0] * 14
    state, d = run(sched, losses)
    assert d[-1].epoch == 30 + patience
