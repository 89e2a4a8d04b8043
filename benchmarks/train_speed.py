"""Training-step time and peak memory of every model of :func:`tausynth.models.build`.

One step = forward + backward + optimizer step with the paper's total loss
(:class:`tausynth.losses.combined.CombinedLoss`: MSE + (1 − SSIM) + 0.5 · cyclic 2.5D perceptual,
axial plane; VGG16 weights ``"random"``, which cost the same as ImageNet's and need no file). If
``tausynth.losses`` cannot be imported the loss is plain MSE, and the table says so. For Pix2Pix
and CycleGAN a step is the generator step (original GAN objective + the paper's loss on
``G(MRI)``) followed by the discriminator step, each with its own Adam.

Each model runs in its own subprocess, so its peak memory is its own: peak resident set size
(``ru_maxrss``) minus the RSS after imports on CPU; ``torch.cuda.max_memory_allocated`` on CUDA.

Sizes
-----
default (``--profile demo``)
    The demo profile's U-Net and data grid (40×48×40, batch 4), and small UNETR / SwinUNETR / GAN
    discriminators (:data:`SIZES`) for the attributes the profile does not set.
``--paper-size``
    The paper's U-Net (channels 64…1024, strides 2×4, dropout 0.2), MONAI's default UNETR
    (hidden 768) and SwinUNETR (feature size 24), discriminators of 64 channels, at the paper
    profile's 2 mm grid 80×96×80 (``--shape 160 192 160`` for 1 mm), batch 1. Meant for a GPU::

        python benchmarks/train_speed.py --device cuda --amp bf16 --paper-size

Examples
--------
``python benchmarks/train_speed.py`` (CPU, demo sizes, all models);
``python benchmarks/train_speed.py --models unet unetr --steps 5 --loss mse``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

MODEL_NAMES = ("unet", "unetr", "swinunetr", "pix2pix", "cyclegan")

# Sizes for the attributes a profile does not set itself (its own values always win).
SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "feature_size": 12,
        "hidden_size": 48,
        "mlp_dim": 96,
        "num_heads": 4,
        "depths": (1, 1, 1, 1),
        "swin_num_heads": (3, 3, 3, 3),
        "d_channels": 8,
        "d_num_layers": 2,
    },
    "demo": {
        "feature_size": 12,
        "hidden_size": 96,
        "mlp_dim": 384,
        "num_heads": 4,
        "depths": (2, 2, 2, 2),
        "swin_num_heads": (3, 6, 12, 24),
        "d_channels": 16,
        "d_num_layers": 3,
    },
    # None: the model's MONAI default (UNETR feature 16 / hidden 768, SwinUNETR feature 24).
    "paper": {"d_channels": 64, "d_num_layers": 3},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODEL_NAMES),
        choices=MODEL_NAMES,
        metavar="NAME",
        help="models to time (default: all)",
    )
    parser.add_argument(
        "--profile", default="demo", choices=("smoke", "demo"), help="CPU sizes (default: demo)"
    )
    parser.add_argument("--paper-size", action="store_true", help="the paper's sizes (for a GPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--amp", default="none", choices=("none", "bf16"), help="autocast dtype (default: none)"
    )
    parser.add_argument(
        "--shape",
        nargs=3,
        type=int,
        metavar=("X", "Y", "Z"),
        help="spatial shape (default: the profile's)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="batch size (default: the profile's; 1 with --paper-size)"
    )
    parser.add_argument(
        "--loss", default="combined", choices=("combined", "mse"), help="loss (default: combined)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def resolve(args: argparse.Namespace) -> tuple[SimpleNamespace, tuple[int, int, int], int]:
    """Model config (profile + :data:`SIZES`), spatial shape and batch size for ``args``."""
    from tausynth.config import load_profile, profile_dict

    profile = "paper" if args.paper_size else args.profile
    cfg = load_profile(profile)
    explicit = profile_dict(profile).get("model", {})
    model = dataclasses.asdict(cfg.model)
    model.update({k: v for k, v in SIZES[profile].items() if k not in explicit})
    shape = tuple(args.shape) if args.shape else tuple(cfg.data.shape)
    batch = args.batch_size or (1 if args.paper_size else cfg.training.batch_size)
    return SimpleNamespace(**model), shape, batch  # type: ignore[return-value]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` training steps of model ``name``; return one result row."""
    import contextlib

    import torch

    from tausynth.models import build, describe, generator_of

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config, shape, batch = resolve(args)
    loss_name = args.loss
    loss_fn = None
    if loss_name == "combined":
        try:
            from tausynth.losses.combined import CombinedLoss

            loss_fn = CombinedLoss(perceptual="cyclic", weights="random").to(device)
        except ImportError:
            loss_name = "mse (tausynth.losses unavailable)"
    torch.manual_seed(0)
    model = build(name, config, spatial_shape=shape).to(device).train()
    mri = torch.randn(batch, 1, *shape, device=device)
    pet = torch.randn(batch, 1, *shape, device=device)

    def paper_loss(pred: torch.Tensor) -> torch.Tensor:
        if loss_fn is None:
            return torch.nn.functional.mse_loss(pred, pet)
        return loss_fn(pred.float(), pet, plane="axial").total

    def autocast() -> contextlib.AbstractContextManager:
        if args.amp == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    if model.kind == "supervised":
        optimizers = [torch.optim.Adam(model.parameters(), lr=5e-4)]
    else:
        optimizers = [
            torch.optim.Adam(model.generator_parameters(), lr=2e-4),
            torch.optim.Adam(model.discriminator_parameters(), lr=2e-4),
        ]

    def step() -> None:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        if model.kind == "supervised":
            with autocast():
                loss = paper_loss(model(mri))
            loss.backward()
            optimizers[0].step()
            return
        with autocast():
            g = model.generator_loss(mri, pet)
            loss = g.total + paper_loss(g.fake_pet)
        loss.backward()
        optimizers[0].step()
        with autocast():
            fakes = (g.fake_pet,) if model.kind == "pix2pix" else (g.fake_pet, g.fake_mri)
            d_loss = model.discriminator_loss(mri, pet, *fakes)
        d_loss.backward()
        optimizers[1].step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    base_rss = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _rss_mb() - base_rss
    info = describe(model)
    return {
        "model": name,
        "kind": model.kind,
        "parameters": info["parameters"],
        "shape": list(shape),
        "padded": list(generator_of(model).padded_shape(shape)),
        "batch": batch,
        "device": str(device),
        "amp": args.amp,
        "loss": loss_name,
        "threads": torch.get_num_threads(),
        "step_s_median": statistics.median(times),
        "step_s_min": min(times),
        "peak_mem_mb": round(peak, 1),
        "peak_mem_kind": "cuda max_memory_allocated"
        if device.type == "cuda"
        else "CPU peak RSS increase",
        "monai": info["monai_version"],
        "torch": info["torch_version"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return 0
    forwarded = list(argv if argv is not None else sys.argv[1:])
    rows = []
    for name in args.models:
        proc = subprocess.run(
            [sys.executable, __file__, *forwarded, "--child", name], capture_output=True, text=True
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"{name}: failed: {tail}", file=sys.stderr)
            rows.append({"model": name, "error": tail})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ok = [r for r in rows if "error" not in r]
    if ok:
        first = ok[0]
        print(
            f"device {first['device']}, amp {first['amp']}, loss {first['loss']}, batch {first['batch']}, "
            f"shape {tuple(first['shape'])}, {first['threads']} threads, MONAI {first['monai']}, torch {first['torch']}"
        )
        print(
            f"{'model':<10} {'params':>12} {'padded':>16} {'step s (median)':>16} {'step s (min)':>13} {'peak MiB':>10}"
        )
        for r in ok:
            print(
                f"{r['model']:<10} {r['parameters']:>12,} {'x'.join(map(str, r['padded'])):>16} "
                f"{r['step_s_median']:>16.3f} {r['step_s_min']:>13.3f} {r['peak_mem_mb']:>10.1f}"
            )
        print(f"peak memory: {first['peak_mem_kind']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
