"""The plane schedule of the cyclic 2.5D perceptual loss (Algorithm 2 of the paper).

Training starts on the axial plane; after ``cycle_duration`` epochs it moves to coronal, then to
sagittal, then back to axial, and every completed axial → coronal → sagittal cycle shrinks the
phase duration by ``cycle_factor`` (rounded with Python's :func:`round`, never below one epoch).
"""

from __future__ import annotations

import bisect
import fractions
import math
from functools import lru_cache
from numbers import Real

import torch

from tausynth.errors import TausynthError
from tausynth.vocabulary import PLANES

"""The three planes, in the order the schedule visits them."""


def parse_cycle_factor(cycle_factor: str | float | fractions.Fraction) -> float:
    """Convert a cycle factor such as ``"2/3"`` or ``0.5`` to the float the official code uses.

    Parameters
    ----------
    cycle_factor : str or float or fractions.Fraction
        A fraction string (``"2/3"``), a decimal string (``"0.5"``) or a number; must be > 0.

    Returns
    -------
    float
        ``float(fractions.Fraction(cycle_factor))``.

    Raises
    ------
    TausynthError
        If the value is not a finite positive number.
    """
    if isinstance(cycle_factor, bool) or not isinstance(cycle_factor, str | Real):
        raise TausynthError(
            f"cycle_factor: expected a fraction string such as '2/3' or a number, got {cycle_factor!r}"
        )
    try:
        value = float(fractions.Fraction(cycle_factor))
    except (ValueError, OverflowError, ZeroDivisionError):
        raise TausynthError(
            f"cycle_factor: {cycle_factor!r} is not a finite number or fraction such as '2/3'"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise TausynthError(f"cycle_factor: must be > 0, got {cycle_factor!r}")
    return value


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TausynthError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def switch_epochs(
    max_epochs: int, cycle_duration: int, cycle_factor: str | float
) -> dict[str, list[int]]:
    """Return the epochs at which each plane phase starts (Algorithm 2).

    Parameters
    ----------
    max_epochs : int
        Number of training epochs (epochs are numbered ``0 .. max_epochs - 1``).
    cycle_duration : int
        Duration ``T`` of the first phase of each plane, in epochs (>= 1).
    cycle_factor : str or float
        Shrink factor applied after each full cycle, e.g. ``"2/3"``.

    Returns
    -------
    dict of str to list of int
        ``{"axial": [...], "coronal": [...], "sagittal": [...]}``, each sorted ascending.

    Examples
    --------
    >>> switch_epochs(1000, 120, "2/3")["axial"]
    [0, 360, 600, 759, 864, 933, 978]
    """
    _check_int("max_epochs", max_epochs, 0)
    _check_int("cycle_duration", cycle_duration, 1)
    return {k: list(v) for k, v in _switch_epochs(max_epochs, cycle_duration, parse_cycle_factor(cycle_factor)).items()}


@lru_cache(maxsize=64)
def _switch_epochs(max_epochs: int, duration: int, factor: float) -> dict[str, tuple[int, ...]]:
    axial: list[int] = []
    coronal: list[int] = []
    sagittal: list[int] = []
    start, d = 0, duration
    while start < max_epochs:
        axial.append(start)
        if start + d < max_epochs:
            coronal.append(start + d)
        if start + 2 * d < max_epochs:
            sagittal.append(start + 2 * d)
        start += 3 * d
        # float product and round-half-to-even, exactly as the official code (not Fraction arithmetic)
        d = max(1, round(d * factor))
    return {"axial": tuple(axial), "coronal": tuple(coronal), "sagittal": tuple(sagittal)}


def plane_phases(
    max_epochs: int, cycle_duration: int, cycle_factor: str | float
) -> list[tuple[int, int, str]]:
    """Return the schedule as consecutive phases ``(start, stop, plane)`` covering ``[0, max_epochs)``.

    ``stop`` is exclusive; the last phase stops at ``max_epochs``.
    """
    starts = switch_epochs(max_epochs, cycle_duration, cycle_factor)
    events = sorted((e, p) for p, es in starts.items() for e in es)
    return [
        (e, events[i + 1][0] if i + 1 < len(events) else max_epochs, p)
        for i, (e, p) in enumerate(events)
    ]


def plane_at_epoch(epoch: int, max_epochs: int, cycle_duration: int, cycle_factor: str | float) -> str:
    """Return the plane whose perceptual loss is used at ``epoch`` (0-based).

    The plane changes at the epochs listed by :func:`switch_epochs` and stays the same otherwise;
    an epoch at or beyond ``max_epochs`` keeps the last plane.
    """
    _check_int("epoch", epoch, 0)
    phases = plane_phases(max_epochs, cycle_duration, cycle_factor)
    if not phases:  # max_epochs == 0: training starts axial
        return PLANES[0]
    i = bisect.bisect_right([s for s, _, _ in phases], epoch) - 1
    return phases[i][2]


def is_phase_start(epoch: int, max_epochs: int, cycle_duration: int, cycle_factor: str | float) -> bool:
    """Whether ``epoch`` starts a plane phase (epoch 0 included).

    The trainer resets its best validation loss to ``+inf`` at these epochs, as the official code
    does whenever the plane selection is (re)set.
    """
    _check_int("epoch", epoch, 0)
    starts = switch_epochs(max_epochs, cycle_duration, cycle_factor)
    return any(epoch in es for es in starts.values())


def cosine_lr(lr: float, t_max: int, epochs: int, eta_min: float = 0.0) -> list[float]:
    """Learning rate at each epoch under ``torch.optim.lr_scheduler.CosineAnnealingLR``.

    Stepped once per epoch as in the official code, so the rate is periodic with period
    ``2 * t_max`` and is not aligned with the shrinking plane phases. Computed by running the
    PyTorch scheduler itself, so it matches what the trainer does.

    Parameters
    ----------
    lr : float
        Initial learning rate.
    t_max : int
        ``T_max`` of the scheduler (the paper: ``int((cycle_duration + 0.5) / 2)``).
    epochs : int
        Number of epochs to return.
    eta_min : float, default=0.0
        Minimum learning rate.

    Returns
    -------
    list of float
        The learning rate used during epochs ``0 .. epochs - 1``.
    """
    _check_int("t_max", t_max, 1)
    _check_int("epochs", epochs, 0)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
    out: list[float] = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out
