"""The training loop: :func:`train` runs (or resumes) one run folder to completion.

Per epoch ``e``, as the official code trains: the plane is ``plane_at_epoch(e)``; a phase start resets the best
validation loss; the model trains on the shuffled training split; the validation loss (the same
total loss at the same plane, no augmentation) decides the best-since-switch checkpoint and early
stopping (:class:`~tausynth.training.state.PaperSchedule`); the cosine LR steps once; then
``final_model.pt`` is written (atomically) and ``metrics.csv`` gets one row.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tausynth.config import VAL_REDUCTIONS, Config, dump_config
from tausynth.data.manifest import TRAINING_COLUMNS, load_manifest, validate_manifest
from tausynth.errors import TausynthError
from tausynth.io import PathLike, file_sha256
from tausynth.models import build, describe, output_layer
from tausynth.training.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)
from tausynth.training.distributed import (
    DistContext,
    all_reduce_sums,
    broadcast_parameters,
    init_distributed,
)
from tausynth.training.engine import Engine, build_loss
from tausynth.training.features import build_perceptual_features
from tausynth.training.inputs import (
    PetNormalizer,
    build_datasets,
    derive_seed,
    epoch_loader,
    resolve_manifest,
    seed_everything,
)
from tausynth.training.logging import MetricsLog, progress_bar, tensorboard_writer
from tausynth.training.run import (
    RunPaths,
    environment_record,
    now_iso,
    prepare_run_dir,
    read_provenance,
    run_dir_for,
    run_lock,
    write_provenance,
)
from tausynth.training.state import EpochDecision, PaperSchedule, TrainingState

__all__ = ["TrainResult", "TrainingInterrupted", "init_output_bias", "resolve_device", "run_epoch", "train", "validation_terms"]

BatchHook = Callable[[int, dict[str, Any]], None]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint was saved; the message says where and how to resume."""


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    run_dir: Path
    state: TrainingState
    seconds: float
    epochs_this_call: int
    resumed: bool
    summary: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def stop_reason(self) -> str | None:
        return self.state.stopped

    def metrics(self) -> pd.DataFrame:
        """``metrics.csv`` of the run."""
        return pd.read_csv(RunPaths(self.run_dir).metrics)


def resolve_device(cfg: Config) -> torch.device:
    """``training.device``: ``"auto"`` is CUDA when available, else CPU."""
    want = cfg.training.device
    if want == "cuda" and not torch.cuda.is_available():
        raise TausynthError("config field 'training.device': 'cuda' requested but CUDA is not available")
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def _amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    t = cfg.training
    on = t.amp if device.type == "cuda" else (t.amp and t.cpu_amp)
    if not on:
        return None
    return torch.bfloat16 if t.amp_dtype == "bfloat16" else torch.float16


def _set_determinism(cfg: Config, device: torch.device) -> None:
    if not cfg.training.deterministic:
        return
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: a few 3D CUDA backward kernels have no deterministic version
    torch.use_deterministic_algorithms(True, warn_only=True)


def _mean_terms(sums: dict[str, float], count: float) -> dict[str, float]:
    return {k: v / count for k, v in sums.items()} if count else {}


def _share(ctx: DistContext, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (an exception raised on rank 0 is re-raised everywhere)."""
    if not ctx.distributed:
        if isinstance(value, BaseException):
            raise value
        return value
    import torch.distributed as dist

    box = [value if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def train(
    cfg: Config,
    run_dir: PathLike | None = None,
    *,
    runs_root: PathLike = "runs",
    manifest: PathLike | None = None,
    root: PathLike = ".",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    on_batch: BatchHook | None = None,
    extend_time_limited: bool = True,
) -> TrainResult:
    """Train (or resume) one run.

    Parameters
    ----------
    cfg : Config
        The resolved configuration (``model.name`` picks the model, ``loss.perceptual`` the loss).
    run_dir : path, optional
        Default ``<runs_root>/<profile>/<model>-<loss>-<normalization>-s<seed>``.
    runs_root : path, default="runs"
    manifest : path, optional
        Data manifest; default ``data.manifest``, else the profile's synthetic cohort under ``root``.
    root : path, default="."
        Where ``data/<profile>/cohort`` lives (the repository root).
    resume : bool
        Continue from ``checkpoints/final_model.pt`` (a finished run returns at once). Its config
        must be the same, except ``training.max_epochs`` / ``training.max_minutes``.
    overwrite : bool
        Replace an existing run folder.
    progress : bool
        tqdm bars (epochs and steps with the loss components and the plane); otherwise one log
        line per epoch.
    log : callable
        Receives the per-epoch lines (without ``progress``) and the final one-line summary.
    extend_time_limited : bool, default=True
        Resuming a run that stopped at its ``training.max_minutes`` bound trains for another bound
        (the bound is per call). ``False`` treats such a run as finished, so re-executing a book page
        reuses it instead of training it further.
    stop_after : int, optional
        Stop after this many epochs in this call, as an interruption at an epoch boundary would
        (the run stays resumable).
    on_batch : callable, optional
        ``on_batch(epoch, batch)`` for every training batch on every rank (for tests/inspection).

    Returns
    -------
    TrainResult

    Raises
    ------
    TausynthError
        For user errors (a run folder in the way, a corrupt checkpoint, bad data...), one line.
    TrainingInterrupted
        On Ctrl-C, after saving ``checkpoints/interrupted.pt`` and the provenance.
    """
    started = time.perf_counter()
    device = resolve_device(cfg)
    ctx = init_distributed(device.type)
    if device.type == "cuda" and ctx.distributed:
        device = torch.device("cuda", ctx.local_rank)
    _set_determinism(cfg, device)
    amp_dtype = _amp_dtype(cfg, device)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg, runs_root)
    paths = RunPaths(run_dir)

    # one trainer per run folder: a second one (even with --overwrite) is refused, naming the holder
    folder_lock = contextlib.ExitStack()
    with folder_lock:
        # Rank 0 decides about the folder and the data; the others follow.
        checkpoint: dict[str, Any] | None = None
        try:
            mode = manifest_path = None
            if ctx.is_main:
                folder_lock.enter_context(run_lock(run_dir))
                mode = prepare_run_dir(run_dir, cfg, resume=resume, overwrite=overwrite)
                if mode == "resume":  # a wrong or corrupt checkpoint fails before any data work
                    checkpoint = load_checkpoint(paths.final, model_name=cfg.model.name)
                manifest_path = resolve_manifest(cfg, manifest, root, log=log)
                if mode == "resume":
                    _check_same_data(paths, manifest_path)
                # validate's checks on what training reads, so a bad file is one line before any work
                validate_manifest(manifest_path, columns=TRAINING_COLUMNS, splits=("train", "val"))
            shared: Any = (mode, manifest_path)
        except TausynthError as exc:
            if ctx.is_main and mode == "new":
                _discard_new_run(paths)
            shared = exc
        mode, manifest_path = _share(ctx, shared)
        try:
            return _train_from(cfg, ctx, device, amp_dtype, run_dir, paths, mode, manifest_path, checkpoint, runs_root,
                               root, progress, log, extend_time_limited, stop_after, on_batch, started)
        except TausynthError:
            # a run that failed before its first epoch leaves no config.yaml behind to refuse the corrected retry
            if ctx.is_main and mode == "new" and not paths.final.is_file():
                _discard_new_run(paths)
            raise


def _check_same_data(paths: RunPaths, manifest_path: Any) -> None:
    """A run resumes on the data it was trained on: the manifest's content, wherever it now lives."""
    if not paths.provenance.is_file():
        return
    data = read_provenance(paths.root).get("data") or {}
    before = data.get("manifest_sha256")
    if before and before != file_sha256(manifest_path):
        raise TausynthError(
            f"cannot resume {paths.root}: it was trained on {data.get('manifest')} and {manifest_path} has other "
            "content; resume with that manifest, or pass --overwrite to start again"
        )


def _discard_new_run(paths: RunPaths) -> None:
    """Remove what :func:`prepare_run_dir` wrote for a new run that never trained (nothing else)."""
    paths.config.unlink(missing_ok=True)
    for folder in (paths.checkpoints, paths.root):
        with contextlib.suppress(OSError):  # not empty: something else lives there, leave it
            folder.rmdir()


@dataclass
class _Session:
    """One call of :func:`train` on one run folder: what every step of the loop reads and updates."""

    cfg: Config
    ctx: DistContext
    device: torch.device
    run_dir: Path
    paths: RunPaths
    log: Callable[[str], None]
    started: float
    normalizer: PetNormalizer
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    engine: Engine
    schedule: PaperSchedule
    train_ds: Any
    val_ds: Any
    grid: tuple[int, ...]
    state: TrainingState
    provenance: dict[str, Any] = field(default_factory=dict)
    prior_seconds: float = 0.0
    metrics: MetricsLog | None = None
    tb: Any = None
    bars: bool = False
    step_in_epoch: int = 0  # the batch a Ctrl-C interrupts, recorded in interrupted.pt

    def save(self, target: Path, complete: bool = True, step_in_epoch: int = 0) -> None:
        """A checkpoint with everything an exact resume needs (weights, optimizers, schedule, RNG, statistics)."""
        save_checkpoint(target, {
            "model_name": self.cfg.model.name, "kind": self.engine.kind, "model": self.model.state_dict(),
            **self.engine.state_dict(), "state": self.state.to_dict(), "rng": capture_rng(),
            "normalization": self.normalizer.kind, "standardizer": self.normalizer.to_dict(), "grid": list(self.grid),
            "config": dump_config(self.cfg), "complete": complete, "step_in_epoch": step_in_epoch,
        })

    def finish(self, status: str) -> None:
        """Write the provenance with the run's ``status`` and where it stands now."""
        state = self.state
        self.provenance.update(
            status=status, stop_reason=state.stopped, epochs_done=state.epoch, steps_done=state.steps,
            best_val_since_switch=None if math.isinf(state.best_val) else state.best_val,
            wall_seconds=self.prior_seconds + time.perf_counter() - self.started, updated=now_iso(),
        )
        self.provenance["sessions"][-1]["ended"] = now_iso()
        self.provenance["sessions"][-1]["end_epoch"] = state.epoch
        write_provenance(self.run_dir, self.provenance)


def _train_from(
    cfg: Config, ctx: Any, device: torch.device, amp_dtype: Any, run_dir: Path, paths: RunPaths, mode: str,
    manifest_path: Any, checkpoint: dict[str, Any] | None, runs_root: PathLike, root: PathLike, progress: bool,
    log: Callable[[str], None], extend_time_limited: bool, stop_after: int | None, on_batch: BatchHook | None,
    started: float,
) -> TrainResult:
    """The body of :func:`train` once the run folder and the manifest are settled."""
    run, feature_record, output_bias = _set_up(cfg, ctx, device, amp_dtype, run_dir, paths, mode, manifest_path,
                                               checkpoint, runs_root, root, log, extend_time_limited, started)
    run.bars = progress and ctx.is_main
    run.tb, tb_status = tensorboard_writer(paths.tensorboard) if ctx.is_main else (None, "rank > 0")
    previous = read_provenance(run_dir) if (ctx.is_main and mode == "resume" and paths.provenance.is_file()) else {}
    run.provenance = _provenance(run, amp_dtype, manifest_path, feature_record, tb_status, mode, previous,
                                 previous.get("output_bias_init") if checkpoint is not None else output_bias)
    run.prior_seconds = float(previous.get("wall_seconds", 0.0))
    run.metrics = MetricsLog(paths.metrics, resume_epoch=run.state.epoch) if ctx.is_main else None
    if ctx.is_main:
        write_provenance(run_dir, run.provenance)
    resumed = mode == "resume"
    if resumed and ctx.is_main:
        log(f"resuming {run_dir} at epoch {run.state.epoch}")
    epochs_this_call = _run_epochs(run, stop_after, on_batch)
    seconds = time.perf_counter() - started
    status = "finished" if run.state.stopped is not None else "paused"
    summary = _summary(run, status, epochs_this_call, seconds)
    if ctx.is_main:
        run.finish(status)
        if epochs_this_call > 0:  # the run has moved past the epoch a Ctrl-C snapshot was taken in
            paths.interrupted.unlink(missing_ok=True)
        log(summary)
    return TrainResult(run_dir, run.state, seconds, epochs_this_call, resumed, summary, run.provenance)


def _set_up(
    cfg: Config, ctx: Any, device: torch.device, amp_dtype: Any, run_dir: Path, paths: RunPaths, mode: str,
    manifest_path: Any, checkpoint: dict[str, Any] | None, runs_root: PathLike, root: PathLike,
    log: Callable[[str], None], extend_time_limited: bool, started: float,
) -> tuple[_Session, dict[str, Any], float | None]:
    """Data, statistics, model, loss and optimizers, new or restored from the checkpoint of a resumed run.

    Returns the session, the perceptual network's provenance record and the output bias set now
    (``None`` unless a new run initializes it).
    """
    t = cfg.training
    frame = load_manifest(manifest_path)
    if mode == "resume" and checkpoint is None:
        checkpoint = load_checkpoint(paths.final, model_name=cfg.model.name)
    if checkpoint is not None:
        normalizer = PetNormalizer.from_checkpoint(checkpoint["normalization"], checkpoint["standardizer"])
        if normalizer.kind != cfg.normalization:
            raise TausynthError(f"{paths.final}: checkpoint normalization {normalizer.kind!r} != config {cfg.normalization!r}")
    else:
        normalizer = PetNormalizer.fit(cfg.normalization, frame)

    seed_everything(t.seed)
    model = build(cfg.model.name, cfg).to(device)
    feature_source = build_perceptual_features(cfg, frame, normalizer, root=root, log=log if ctx.is_main else _quiet)
    loss_fn = build_loss(cfg, amp_dtype, feature_source.features).to(device)
    engine = Engine(model, loss_fn, cfg, device, ctx, amp_dtype)
    schedule = PaperSchedule(t.max_epochs, t.cycle_duration, t.cycle_factor, t.patience, t.early_stopping)
    cache_dir = Path(runs_root) / ".cache" if cfg.data.cache == "disk" else None
    train_ds, val_ds, grid = build_datasets(cfg, frame, normalizer, model.divisor, cache_dir)

    state = TrainingState()
    output_bias = None
    if checkpoint is None and t.init_output_bias:
        output_bias = init_output_bias(model, train_ds)
    if checkpoint is not None:
        load_model_state(model, checkpoint["model"], paths.final)
        engine.load_state_dict(checkpoint)
        restore_rng(checkpoint["rng"])
        state = TrainingState.from_dict(checkpoint["state"])
        if state.stopped == "time_limit" and not extend_time_limited:
            pass  # reused as it is (the book's pages)
        elif state.stopped in ("max_epochs", "time_limit") and state.epoch < t.max_epochs:
            state.stopped = None  # extended or re-timed: keep going
    broadcast_parameters(model, ctx)
    run = _Session(cfg, ctx, device, run_dir, paths, log, started, normalizer, model, loss_fn, engine, schedule,
                   train_ds, val_ds, tuple(grid), state)
    return run, feature_source.record, output_bias


def _provenance(
    run: _Session, amp_dtype: Any, manifest_path: Any, feature_record: dict[str, Any], tb_status: str, mode: str,
    previous: dict[str, Any], output_bias: float | None,
) -> dict[str, Any]:
    """The run's ``provenance.json`` at the start of this call (a resumed run keeps its history)."""
    cfg, t, state = run.cfg, run.cfg.training, run.state
    return {
        "run_dir": str(run.run_dir),
        "run_name": run.run_dir.name,
        "profile": cfg.profile,
        "model": describe(run.model),
        "loss": cfg.loss.perceptual,
        "normalization": cfg.normalization,
        "seed": t.seed,
        "environment": environment_record(str(run.device)),
        "world_size": run.ctx.world_size,
        "amp": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "perceptual_weights": run.loss_fn.weights_source,
        "perceptual_features": feature_record,
        "data": {
            "manifest": str(manifest_path),
            "manifest_sha256": file_sha256(manifest_path),
            "n_train": len(run.train_ds),
            "n_val": len(run.val_ds),
            "augment": cfg.data.augment,
            "grid": list(run.grid),
        },
        "standardizer": run.normalizer.to_dict(),
        "schedule": run.schedule.describe(),
        "time_limit_minutes": t.max_minutes,
        "output_bias_init": output_bias,
        "tensorboard": tb_status,
        "started": previous.get("started", now_iso()),
        "sessions": [*previous.get("sessions", []), {"started": now_iso(), "start_epoch": state.epoch, "mode": mode}],
        "status": "running",
        "stop_reason": None,
        "epochs_done": state.epoch,
        "steps_done": state.steps,
    }


def _run_epochs(run: _Session, stop_after: int | None, on_batch: BatchHook | None) -> int:
    """Train epoch after epoch until the schedule stops, the time bound passes or ``stop_after`` epochs are done.

    Ctrl-C saves ``interrupted.pt`` and the provenance, then raises :class:`TrainingInterrupted`;
    any other failure writes ``status: failed`` to the provenance and is raised again.
    """
    t, state, ctx, paths = run.cfg.training, run.state, run.ctx, run.paths
    epochs_this_call = 0
    epoch = state.epoch
    try:
        while state.stopped is None and state.epoch < t.max_epochs:
            epoch = state.epoch
            run_epoch(run, epoch, on_batch)
            epochs_this_call += 1
            if stop_after is not None and epochs_this_call >= stop_after and state.stopped is None:
                break
    except KeyboardInterrupt:
        if ctx.is_main:
            state.stopped = "interrupted"
            run.save(paths.interrupted, complete=False, step_in_epoch=run.step_in_epoch)
            run.finish("interrupted")
        raise TrainingInterrupted(
            f"interrupted in epoch {epoch + 1}; saved {paths.interrupted}; "
            f"rerun with --resume to continue from the end of epoch {epoch} ({paths.final})"
        ) from None
    except Exception:
        if ctx.is_main:  # a full disk, a crash: the provenance says so rather than "running"
            with contextlib.suppress(OSError):
                run.finish("failed")
        raise
    finally:
        if run.tb is not None:
            run.tb.close()
    return epochs_this_call


def run_epoch(run: _Session, epoch: int, on_batch: BatchHook | None = None) -> None:
    """One epoch of the paper's training, as the trainer runs it.

    1. The plane of this epoch comes from Algorithm 2 (``plane_at_epoch``); the first epoch of a
       phase resets the best validation loss.
    2. Every training batch takes one optimizer step on α·MSE + β·(1 − SSIM) + γ·L_perc(plane).
    3. The validation loss is the same total loss at the same plane, without augmentation.
    4. It decides the best-since-switch checkpoint and early stopping; the cosine LR steps once.
    5. ``final_model.pt`` (and, when improved, ``best_since_switch.pt``) and one row of
       ``metrics.csv`` are written.
    """
    t, state, schedule = run.cfg.training, run.state, run.schedule
    plane = schedule.begin_epoch(state, epoch)  # Algorithm 2; resets the best loss at a phase start
    seed_everything(derive_seed(t.seed, epoch, run.ctx.rank))
    start = _EpochStart(lr=run.engine.lr, steps=state.steps, clock=time.perf_counter())
    train_terms, train_n = _train_batches(run, epoch, plane, on_batch)  # engine.train_step, batch by batch
    val_terms = _validate(run, epoch, plane)  # the same loss at the same plane, no augmentation
    run.engine.step_schedulers()  # the cosine learning rate steps once per epoch
    decision = schedule.end_epoch(state, epoch, val_terms["loss"])  # best since the switch; early stopping
    _stop_at_time_limit(run, decision)
    if run.ctx.is_main:
        run.save(run.paths.final)
        if decision.improved:
            run.save(run.paths.best)
        _record_epoch(run, _epoch_row(run, epoch, plane, start, (train_terms, train_n), val_terms, decision))


@dataclass(frozen=True)
class _EpochStart:
    """What an epoch's row reports relative to its start: the learning rate used, steps and time before it."""

    lr: float
    steps: int
    clock: float


def _stop_at_time_limit(run: _Session, decision: EpochDecision) -> None:
    """Mark the run stopped when ``training.max_minutes`` has passed in this call (and it is not done anyway)."""
    t, state = run.cfg.training, run.state
    elapsed_call = time.perf_counter() - run.started
    if not decision.stop and t.max_minutes is not None and elapsed_call > 60 * t.max_minutes and state.epoch < t.max_epochs:
        state.stopped = "time_limit"


def _epoch_row(
    run: _Session,
    epoch: int,
    plane: str,
    start: _EpochStart,
    train: tuple[dict[str, float], float],
    val_terms: dict[str, float],
    decision: EpochDecision,
) -> dict[str, Any]:
    """The epoch's row of ``metrics.csv``: plane, learning rate, each loss term and its share, the decision."""
    state = run.state
    train_terms, train_n = train
    return {
        "epoch": epoch, "plane": plane, "phase_start": run.schedule.phase_start(epoch), "lr": start.lr,
        "steps": state.steps - start.steps, "samples": int(train_n),
        **{f"train_{k}": v for k, v in train_terms.items()},
        **{f"train_{k}": v for k, v in run.loss_fn.shares(train_terms).items()},
        **{f"val_{k}": v for k, v in val_terms.items()},
        **{f"val_{k}": v for k, v in run.loss_fn.shares(val_terms).items()},
        "best_val": state.best_val, "improved": decision.improved, "patience_counter": state.patience_counter,
        "seconds": time.perf_counter() - start.clock,
    }


def _train_batches(
    run: _Session, epoch: int, plane: str, on_batch: BatchHook | None
) -> tuple[dict[str, float], float]:
    """The epoch's optimizer steps; the mean loss terms over its samples (and ranks), checked finite."""
    t, state = run.cfg.training, run.state
    run.engine.begin_epoch()
    loader = epoch_loader(run.train_ds, run.cfg, run.ctx, epoch, train=True)
    sums: dict[str, float] = {}
    count = 0
    n_batches = len(loader) if t.batches_per_epoch is None else min(len(loader), t.batches_per_epoch)
    bar = progress_bar(itertools.islice(loader, n_batches), total=n_batches,
                       desc=f"epoch {epoch + 1}/{t.max_epochs} {plane}", enabled=run.bars)
    for run.step_in_epoch, batch in enumerate(bar):
        if on_batch is not None:
            on_batch(epoch, batch)
        terms, stepped = run.engine.train_step(batch, plane, last=run.step_in_epoch == n_batches - 1)
        state.steps += int(stepped)
        n = int(batch["t1"].shape[0])
        count += n
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * n
        if run.bars:
            bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items() if k in ("loss", "mse", "ssim_loss", "perceptual", "d_loss")})
    train_sums, train_n = _reduce(sums, count, run.ctx, run.device)
    train_terms = _mean_terms(train_sums, train_n)
    _check_finite(train_terms, "training", epoch, run)
    return train_terms, train_n


def _validate(run: _Session, epoch: int, plane: str) -> dict[str, float]:
    """The validation loss terms of the epoch (the same loss at the same plane, no augmentation)."""
    val_loader = epoch_loader(run.val_ds, run.cfg, run.ctx, epoch, train=False)
    val_terms, val_n = validation_terms(
        ((run.engine.val_step(b, plane), int(b["t1"].shape[0])) for b in val_loader),
        run.cfg.training.val_reduction, run.ctx, run.device,
    )
    if val_n:  # NaN weights after the epoch's last step show up here first
        _check_finite(val_terms, "validation", epoch, run)
    return val_terms


def _record_epoch(run: _Session, row: dict[str, Any]) -> None:
    """One row of ``metrics.csv`` (and TensorBoard), the provenance, and a log line without progress bars."""
    assert run.metrics is not None
    run.metrics.append(row)
    if run.tb is not None:
        for k, v in row.items():
            if isinstance(v, float):
                run.tb.add_scalar(k, v, row["epoch"])
    run.finish("running")
    if not run.bars:
        t = run.cfg.training
        run.log(
            f"epoch {row['epoch'] + 1:>3d}/{t.max_epochs} {row['plane']:8s} lr {row['lr']:.2e}  "
            f"train {row.get('train_loss', math.nan):.4f}  val {row['val_loss']:.4f}"
            f"{'  *' if row['improved'] else ''}  {row['seconds']:.1f} s"
        )


def _summary(run: _Session, status: str, epochs_this_call: int, seconds: float) -> str:
    """The one-line summary of this call."""
    cfg, state = run.cfg, run.state
    best = "n/a" if math.isinf(state.best_val) else f"{state.best_val:.4f} (epoch {state.best_epoch + 1})"
    return (
        f"{cfg.model.name} {cfg.loss.perceptual} {cfg.normalization} seed {cfg.training.seed}: "
        f"{state.epoch}/{cfg.training.max_epochs} epochs ({epochs_this_call} now, {seconds:.1f} s), "
        f"{status} ({state.stopped or 'stopped after ' + str(epochs_this_call) + ' epochs, resumable'}); "
        f"best val since last switch {best}; plane {state.plane} -> {run.run_dir}"
    )


def _quiet(_line: str) -> None:
    """Log sink of the ranks other than 0."""


def init_output_bias(model: torch.nn.Module, dataset: Any) -> float:
    """Set the output bias of ``model``'s MRI → PET network to the mean PET voxel of ``dataset``.

    The mean is over every voxel of every sample as the network is trained on it (normalized and
    padded); the network then starts at the training PET's mean level instead of at 0.

    Returns
    -------
    float
        The bias value.
    """
    total, count = 0.0, 0
    for i in range(len(dataset)):
        pet = dataset[i]["pet"]
        total += float(pet.double().sum())
        count += pet.numel()
    if count == 0:
        raise TausynthError("training.init_output_bias: the training split has no PET voxels")
    value = total / count
    layer = output_layer(model)
    if layer.bias is None:
        raise TausynthError(f"training.init_output_bias: the output layer of {getattr(model, 'name', 'the model')} has no bias")
    with torch.no_grad():
        layer.bias.fill_(value)
    return value


def _check_finite(terms: dict[str, float], which: str, epoch: int, run: _Session) -> None:
    """Stop with a one-line error when an epoch's mean loss is NaN or infinite (the last good checkpoint stays)."""
    if math.isfinite(terms.get("loss", 0.0)):
        return
    if run.ctx.is_main:
        run.finish("failed")
    hint = "; it ran under bf16/fp16 autocast: try training.amp: false" if run.engine.amp_dtype is not None else ""
    raise TausynthError(
        f"{run.run_dir}: {which} loss is not finite in epoch {epoch + 1} "
        f"(kept the checkpoint of epoch {epoch}, {run.paths.final.name}){hint}"
    )


def validation_terms(
    batches: Iterable[tuple[dict[str, float], int]],
    reduction: str = "batch_mean",
    ctx: DistContext | None = None,
    device: torch.device | None = None,
) -> tuple[dict[str, float], float]:
    """Average the validation loss terms of one epoch over batches (and ranks).

    Parameters
    ----------
    batches : iterable of ``(terms, n)``
        Each validation batch's mean loss terms and its number of samples.
    reduction : {"batch_mean", "sample_mean"}, default="batch_mean"
        ``"batch_mean"``: the mean of the per-batch means, as the official code (a short last batch
        weighs as much as a full one). ``"sample_mean"``: each batch weighted by its size, i.e. the
        mean over samples. Under DDP the sums and the counts (batches or samples) are summed over
        ranks before dividing.

    Returns
    -------
    terms : dict of str to float
        The mean terms (``loss``, ``mse``, ``ssim_loss``, ``perceptual``); empty when there were no
        batches on any rank.
    count : float
        The number of batches (or samples) behind the means, over all ranks.

    Examples
    --------
    >>> batches = [({"loss": 1.0}, 2), ({"loss": 4.0}, 1)]
    >>> validation_terms(batches, "batch_mean")[0]["loss"], validation_terms(batches, "sample_mean")[0]["loss"]
    (2.5, 2.0)
    """
    if reduction not in VAL_REDUCTIONS:
        raise TausynthError(
            f"config field 'training.val_reduction': unknown value {reduction!r} (allowed: {', '.join(VAL_REDUCTIONS)})"
        )
    # every rank reports the same keys, even one whose validation shard is empty
    sums = dict.fromkeys(("loss", "mse", "ssim_loss", "perceptual"), 0.0)
    count = 0
    for terms, n in batches:
        weight = 1 if reduction == "batch_mean" else int(n)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * weight
        count += weight
    reduced, total = _reduce(sums, count, ctx or DistContext(), device or torch.device("cpu"))
    return _mean_terms(reduced, total), total


def _reduce(sums: dict[str, float], count: int, ctx: DistContext, device: torch.device) -> tuple[dict[str, float], float]:
    total = all_reduce_sums({**sums, "__count__": float(count)}, ctx, device)
    n = total.pop("__count__")
    return total, n
