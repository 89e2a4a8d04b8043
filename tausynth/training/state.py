"""The paper's epoch-level semantics: plane schedule, best-since-switch and early stopping.

What the official code does at the end of every epoch , as one small state machine
that a test can drive with a fake validation-loss sequence:

* the perceptual plane of epoch ``e`` is :func:`~tausynth.losses.schedule.plane_at_epoch` (training
  starts axial);
* at every epoch that starts a plane phase (:func:`~tausynth.losses.schedule.is_phase_start`,
  epoch 0 included) the best validation loss is reset to ``+inf``, so the first epoch of each
  phase always "improves" and writes the best-since-switch checkpoint;
* an improvement resets the patience counter to 0; an epoch without improvement increments it
  **only for epochs after the trigger epoch** ``axial_starts[2]`` (the start of the third axial
  phase: epoch 600 of the paper's 1000), i.e. from epoch 601 on; training stops when the counter
  reaches ``patience``. A run too short to have three axial phases has the trigger epoch 0, so it
  counts from epoch 1 on (the official code's fallback).

That is the ``"official"`` early-stopping rule. ``"third_axial"`` is this package's earlier reading:
count from ``axial_starts[2]`` itself, and never stop early without three axial phases.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tausynth.config import EARLY_STOPPING_RULES
from tausynth.errors import TausynthError
from tausynth.losses.schedule import is_phase_start, plane_at_epoch, switch_epochs

__all__ = ["EARLY_STOPPING_RULES", "EpochDecision", "PaperSchedule", "TrainingState"]



@dataclass
class TrainingState:
    """Everything about the loop's progress that a checkpoint must restore.

    Attributes
    ----------
    epoch : int
        Number of completed epochs (the next epoch to run, 0-based).
    plane : str
        Plane of the last completed epoch (``"axial"`` before the first).
    best_val : float
        Best validation loss since the last plane switch (``inf`` right after one).
    best_epoch : int
        Epoch of ``best_val`` (-1 if none).
    patience_counter : int
        Epochs without improvement counted so far (only from :attr:`PaperSchedule.counting_from` on).
    steps : int
        Optimizer steps done in total.
    stopped : str or None
        Why the loop ended (``"max_epochs"``, ``"early_stopping"``, ``"time_limit"``), if it did.
    """

    epoch: int = 0
    plane: str = "axial"
    best_val: float = math.inf
    best_epoch: int = -1
    patience_counter: int = 0
    steps: int = 0
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (stored in checkpoints, loadable with ``weights_only=True``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class EpochDecision:
    """What :meth:`PaperSchedule.end_epoch` decided for one epoch."""

    epoch: int
    plane: str
    phase_start: bool
    improved: bool
    counting: bool
    stop: bool


class PaperSchedule:
    """The plane schedule and early-stopping rules of the paper for one run.

    Parameters
    ----------
    max_epochs, cycle_duration : int
    cycle_factor : str or float
        As in :func:`tausynth.losses.schedule.switch_epochs`.
    patience : int
        Epochs without improvement (counted from :attr:`counting_from` on) before stopping.
    early_stopping : {"official", "third_axial"}, default="official"
        ``"official"``: count the epochs after ``axial_starts[2]`` (after epoch 0 when there are
        fewer than three axial phases), as the official code. ``"third_axial"``: count from
        ``axial_starts[2]`` on, and never stop early when there are fewer than three axial phases.

    Examples
    --------
    >>> sched = PaperSchedule(1000, 120, "2/3", patience=30)
    >>> sched.counting_from, sched.plane(120)
    (601, 'coronal')
    >>> PaperSchedule(1000, 120, "2/3", patience=30, early_stopping="third_axial").counting_from
    600
    >>> PaperSchedule(15, 4, "2/3", patience=3).counting_from  # axial phases start at 0 and 12 only
    1
    """

    def __init__(
        self,
        max_epochs: int,
        cycle_duration: int,
        cycle_factor: str | float,
        patience: int,
        early_stopping: str = "official",
    ) -> None:
        if early_stopping not in EARLY_STOPPING_RULES:
            raise TausynthError(
                f"config field 'training.early_stopping': unknown value {early_stopping!r} "
                f"(allowed: {', '.join(EARLY_STOPPING_RULES)})"
            )
        self.max_epochs = int(max_epochs)
        self.cycle_duration = int(cycle_duration)
        self.cycle_factor = cycle_factor
        self.patience = int(patience)
        self.early_stopping = early_stopping
        self.switches = switch_epochs(self.max_epochs, self.cycle_duration, cycle_factor)
        axial = self.switches["axial"]
        #: First epoch whose non-improvement counts towards patience; None: early stopping never triggers.
        self.counting_from: int | None
        if early_stopping == "official":  # epoch > trigger, the trigger 0 without a third axial phase
            self.counting_from = (axial[2] if len(axial) > 2 else 0) + 1
        else:
            self.counting_from = axial[2] if len(axial) > 2 else None

    def plane(self, epoch: int) -> str:
        """The perceptual plane used during ``epoch``."""
        return plane_at_epoch(epoch, self.max_epochs, self.cycle_duration, self.cycle_factor)

    def phase_start(self, epoch: int) -> bool:
        """Whether ``epoch`` starts a plane phase (the best validation loss is reset there)."""
        return is_phase_start(epoch, self.max_epochs, self.cycle_duration, self.cycle_factor)

    def begin_epoch(self, state: TrainingState, epoch: int) -> str:
        """Prepare ``state`` for ``epoch``: reset the best loss at a phase start; return the plane."""
        if self.phase_start(epoch):
            state.best_val = math.inf
            state.best_epoch = -1
        return self.plane(epoch)

    def end_epoch(self, state: TrainingState, epoch: int, val_loss: float) -> EpochDecision:
        """Record ``val_loss`` of ``epoch`` (after :meth:`begin_epoch`) and decide whether to stop.

        Updates ``state`` in place: ``epoch`` (to ``epoch + 1``), ``plane``, ``best_val``,
        ``best_epoch``, ``patience_counter`` and ``stopped``.
        """
        plane = self.plane(epoch)
        improved = bool(val_loss < state.best_val)  # NaN never improves
        counting = self.counting_from is not None and epoch >= self.counting_from
        if improved:
            state.best_val = float(val_loss)
            state.best_epoch = epoch
            state.patience_counter = 0
        elif counting:
            state.patience_counter += 1
        state.epoch = epoch + 1
        state.plane = plane
        stop = counting and state.patience_counter >= self.patience
        if stop:
            state.stopped = "early_stopping"
        elif state.epoch >= self.max_epochs:
            state.stopped = "max_epochs"
        return EpochDecision(epoch, plane, self.phase_start(epoch), improved, counting, stop)

    def describe(self) -> dict[str, Any]:
        """The schedule as plain values (for provenance and the book)."""
        return {
            "max_epochs": self.max_epochs,
            "cycle_duration": self.cycle_duration,
            "cycle_factor": str(self.cycle_factor),
            "switch_epochs": self.switches,
            "patience": self.patience,
            "early_stopping": self.early_stopping,
            "early_stopping_counts_from": self.counting_from,
            "early_stopping_note": self._note(),
        }

    def _note(self) -> str:
        """One line on when patience counts (epochs 0-based)."""
        axial = self.switches["axial"]
        if self.early_stopping == "official":
            if len(axial) > 2:
                return (f"official rule: patience counts epochs after the third axial start (epoch {axial[2]}), "
                        f"from epoch {self.counting_from} on")
            return f"official rule: fewer than 3 axial phases, so patience counts from epoch {self.counting_from} on"
        if self.counting_from is not None:
            return f"third_axial rule: patience counts from epoch {self.counting_from} (the third axial start) on"
        return "third_axial rule: fewer than 3 axial phases, so early stopping never triggers"
