"""Algorithm 2: plane switch epochs, plane at epoch, phase starts, cosine learning rate."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tausynth.errors import TausynthError
from tausynth.losses.schedule import (
    PLANES,
    cosine_lr,
    is_phase_start,
    parse_cycle_factor,
    plane_at_epoch,
    plane_phases,
    switch_epochs,
)

# Algorithm 2's defaults in the official code
PAPER = {
    "axial": [0, 360, 600, 759, 864, 933, 978],
    "coronal": [120, 440, 653, 794, 887, 948, 988],
    "sagittal": [240, 520, 706, 829, 910, 963, 998],
}


@pytest.mark.parametrize("factor", ["2/3", Fraction(2, 3), 2 / 3])
def test_paper_defaults_golden(factor):
    assert switch_epochs(1000, 120, factor) == PAPER


def test_keys_and_types():
    out = switch_epochs(50, 10, "1/2")
    assert list(out) == ["axial", "coronal", "sagittal"]
    assert all(type(e) is int for es in out.values() for e in es)


def test_hand_checked_halves_round_to_even():
    # 5 * 1/2 = 2.5 -> 2 ; then 2 * 1/2 = 1
    assert switch_epochs(30, 5, "1/2") == {
        "axial": [0, 15, 21, 24, 27],
        "coronal": [5, 17, 22, 25, 28],
        "sagittal": [10, 19, 23, 26, 29],
    }
    # 7 * 1/2 = 3.5 -> 4 ; 4 -> 2 ; 2 -> 1
    assert switch_epochs(45, 7, "1/2") == {
        "axial": [0, 21, 33, 39, 42],
        "coronal": [7, 25, 35, 40, 43],
        "sagittal": [14, 29, 37, 41, 44],
    }


def test_float_product_not_exact_fraction():
    # 45 * float(7/10) = 31.499999999999996 -> 31, whereas the exact 63/2 would round to 32
    assert round(45 * Fraction("0.7")) == 32
    out = switch_epochs(300, 45, "0.7")
    assert out["axial"][:2] == [0, 135]
    assert out["coronal"][:2] == [45, 166]  # 135 + 31
    assert out["axial"][2] == 135 + 3 * 31


def test_truncation_at_max_epochs():
    assert switch_epochs(130, 120, "2/3") == {"axial": [0], "coronal": [120], "sagittal": []}
    assert switch_epochs(120, 120, "2/3") == {"axial": [0], "coronal": [], "sagittal": []}
    assert switch_epochs(0, 120, "2/3") == {"axial": [], "coronal": [], "sagittal": []}
    assert switch_epochs(1, 1, 1) == {"axial": [0], "coronal": [], "sagittal": []}


def test_duration_never_below_one():
    out = switch_epochs(20, 1, "1/10")
    assert out["axial"] == list(range(0, 20, 3))
    assert out["coronal"] == list(range(1, 20, 3))
    assert out["sagittal"] == list(range(2, 20, 3))


@pytest.mark.parametrize(
    "factor", ["abc", "1/0", "-1/2", 0, float("nan"), float("inf"), None, True, [1]]
)
def test_bad_factor_is_user_error(factor):
    with pytest.raises(TausynthError, match="cycle_factor"):
        parse_cycle_factor(factor)


@pytest.mark.parametrize(
    ("args", "field"),
    [((-1, 10, "1/2"), "max_epochs"), ((10, 0, "1/2"), "cycle_duration"), ((10.0, 5, "1/2"), "max_epochs")],
)
def test_bad_ints_are_user_errors(args, field):
    with pytest.raises(TausynthError, match=field):
        switch_epochs(*args)


def test_parse_cycle_factor_matches_official_conversion():
    assert parse_cycle_factor("2/3") == float(Fraction(2, 3))
    assert parse_cycle_factor("0.5") == 0.5
    assert parse_cycle_factor(0.75) == 0.75


def test_plane_at_epoch_paper():
    expect = {
        0: "axial", 119: "axial", 120: "coronal", 239: "coronal", 240: "sagittal", 359: "sagittal",
        360: "axial", 600: "axial", 652: "axial", 653: "coronal", 998: "sagittal", 999: "sagittal",
        5000: "sagittal",
    }
    for epoch, plane in expect.items():
        assert plane_at_epoch(epoch, 1000, 120, "2/3") == plane, epoch


def test_is_phase_start_paper():
    starts = {e for es in PAPER.values() for e in es}
    got = {e for e in range(1000) if is_phase_start(e, 1000, 120, "2/3")}
    assert got == starts
    assert is_phase_start(0, 1000, 120, "2/3")


def test_plane_phases_cover_training():
    phases = plane_phases(1000, 120, "2/3")
    assert phases[0] == (0, 120, "axial")
    assert phases[-1] == (998, 1000, "sagittal")
    assert all(a[1] == b[0] for a, b in zip(phases, phases[1:], strict=False))


@settings(max_examples=150, deadline=None)
@given(
    max_epochs=st.integers(0, 600),
    duration=st.integers(1, 150),
    factor=st.sampled_from(["1/2", "2/3", "3/4", "0.9", "1", "5/4", "1/3", "0.7"]),
)
def test_schedule_properties(max_epochs, duration, factor):
    out = switch_epochs(max_epochs, duration, factor)
    assert set(out) == set(PLANES)
    all_starts = [e for es in out.values() for e in es]
    assert len(all_starts) == len(set(all_starts))  # disjoint
    for es in out.values():
        assert es == sorted(es)
        assert all(0 <= e < max_epochs for e in es)
    if max_epochs > 0:
        assert out["axial"][0] == 0
    # phases visit axial -> coronal -> sagittal -> axial ... with no repeats or skips
    events = [p for _, p in sorted((e, p) for p, es in out.items() for e in es)]
    for a, b in zip(events, events[1:], strict=False):
        assert PLANES.index(b) == (PLANES.index(a) + 1) % 3
    # plane_at_epoch agrees with the event list, and starts are exactly the phase boundaries
    for e in range(0, max_epochs, max(1, max_epochs // 40)):
        last = max(s for s in all_starts if s <= e)
        plane = next(p for p, es in out.items() if last in es)
        assert plane_at_epoch(e, max_epochs, duration, factor) == plane
        assert is_phase_start(e, max_epochs, duration, factor) == (e in all_starts)


def test_cosine_lr_matches_closed_form_and_is_periodic():
    lrs = cosine_lr(5e-4, 60, 250)
    assert len(lrs) == 250
    for e in (0, 17, 60, 90, 120, 200):
        assert lrs[e] == pytest.approx(5e-4 * (1 + math.cos(math.pi * e / 60)) / 2, abs=1e-12)
    assert lrs[60] == pytest.approx(0.0, abs=1e-12)
    assert lrs[120] == pytest.approx(5e-4)
