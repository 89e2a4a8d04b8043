"""Speed and peak memory of the batched perceptual loss against the official per-slice loop.

Forward + backward of one plane's perceptual loss (Algorithm 1) on random volumes:

* ``loop``: the official Python loop over slices (:func:`tausynth.losses.reference.per_slice_loop_loss`);
* ``ours fp32 chunk=k``: :class:`tausynth.losses.perceptual.SlicePerceptualLoss`, exact float32,
  for each chunk size ``k`` of the sweep;
* ``ours bf16``: the same under ``torch.autocast(dtype=torch.bfloat16)`` at the default
  (automatic) chunk size, with its value's relative difference from float32.

Times are the best of ``--repeats`` runs after one warm-up, the cases taking turns so that a busy
host slows them alike. Peak memory is
the rise of the process's peak resident set (CPU, via ``/proc/self/clear_refs``) or of
``torch.cuda.max_memory_allocated`` (CUDA) over the level before the call.

Examples
--------
CPU, the issue's two shapes and the demo grid (2 threads)::

    .venv/bin/python benchmarks/perceptual_speed.py --demo

A lent GPU::

    python benchmarks/perceptual_speed.py --device cuda --shape 2,1,128,128,128 --chunks auto,16,32,64,all
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import sys
import time
from pathlib import Path

import torch

from tausynth.losses.perceptual import (
    CHUNK_PIXELS,
    PLANE_AXES,
    SlicePerceptualLoss,
    vgg16_relu4_3,
)
from tausynth.losses.reference import per_slice_loop_loss

CPU_SHAPES = ((2, 1, 64, 64, 64), (1, 1, 96, 112, 96))


def _proc_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class PeakMemory:
    """Peak memory above the current level during a block, in MiB (CPU RSS or CUDA allocator)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _malloc_trim()  # hand freed heap back to the OS so the baseline is the live memory
            try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
                Path("/proc/self/clear_refs").write_text("5")
                self._base = _proc_kb("VmRSS") * 1024
            except OSError:
                self._base = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self._base is not None:
            self.mib = (_proc_kb("VmHWM") * 1024 - self._base) / 2**20


def run_once(loss_fn, pred0: torch.Tensor, target: torch.Tensor, device: torch.device) -> tuple[float, float, float]:
    """One forward + backward: (seconds, loss value, peak MiB)."""
    pred = pred0.clone().requires_grad_(True)
    gc.collect()
    with PeakMemory(device) as mem:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss = loss_fn(pred, target)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
    return dt, float(loss.detach()), mem.mib


def auto_chunk(shape: tuple[int, ...], plane: str, device: torch.device) -> int:
    """The slices per chunk that ``max_slices_per_chunk=None`` picks."""
    b, _, *xyz = shape
    hw = [s for axis, s in enumerate(xyz, start=2) if axis != PLANE_AXES[plane]]
    return max(1, CHUNK_PIXELS.get(device.type, CHUNK_PIXELS["cpu"]) // (b * hw[0] * hw[1]))


def run_shape(shape, device, features, chunks, plane: str, repeats: int, loop: bool, seed: int = 0) -> list[dict]:
    """Time every case at ``shape``, round-robin (one run of each case per round, so that a busy
    host slows all cases alike); the first round warms up and is not timed."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen)
    pred0 = (target + 0.2 * torch.randn(shape, generator=gen)).to(device)
    target = target.to(device)
    auto = f"auto={auto_chunk(shape, plane, device)}"
    cases: list[tuple[str, object, str, object]] = []
    if loop:
        cases.append(("loop", 1, "fp32", lambda p, t: per_slice_loop_loss(features, p, t, plane)))
    for chunk in chunks:
        loss = SlicePerceptualLoss(features, max_slices_per_chunk=None if chunk == "auto" else chunk)
        label = auto if chunk == "auto" else "all" if chunk == 10**9 else chunk
        cases.append(("ours", label, "fp32", lambda p, t, loss=loss: loss(p, t, plane)))
    fast = SlicePerceptualLoss(features, autocast_dtype=torch.bfloat16)
    cases.append(("ours", auto, "bf16", lambda p, t: fast(p, t, plane)))

    print(f"shape {shape} on {device}, plane {plane}:", flush=True)
    results = [{"seconds": float("inf"), "value": float("nan"), "peak_mib": 0.0} for _ in cases]
    for r in range(repeats + 1):
        for res, (_, _, _, fn) in zip(results, cases, strict=True):
            dt, value, mib = run_once(fn, pred0, target, device)
            res["value"] = value
            res["peak_mib"] = max(res["peak_mib"], mib)
            if r > 0:
                res["seconds"] = min(res["seconds"], dt)
    rows = []
    for (name, chunk, dtype, _), res in zip(cases, results, strict=True):
        rows.append({"shape": "x".join(map(str, shape)), "impl": name, "chunk": chunk, "dtype": dtype, **res})
        print(
            f"  {name:<6} chunk={str(chunk):>7} {dtype:<5} {res['seconds']:8.3f} s  "
            f"{res['peak_mib']:8.0f} MiB  value={res['value']:.6e}",
            flush=True,
        )
    return rows


def summarise(rows: list[dict]) -> None:
    print("\nsummary (ratio = loop time / our time; > 1 means we are faster)")
    print(f"{'shape':<16} {'loop s':>8} {'fp32 auto s':>15} {'best chunk':>10} {'fp32 best s':>12} "
          f"{'x auto':>9} {'x best':>7} {'bf16 s':>7} {'x bf16':>7} {'bf16 vs fp32':>12}")
    for shape in dict.fromkeys(r["shape"] for r in rows):
        rs = [r for r in rows if r["shape"] == shape]
        loop = next((r for r in rs if r["impl"] == "loop"), None)
        fp32 = [r for r in rs if r["impl"] == "ours" and r["dtype"] == "fp32"]
        default = next((r for r in fp32 if str(r["chunk"]).startswith("auto")), None)
        best = min(fp32, key=lambda r: r["seconds"])
        bf16 = next(r for r in rs if r["dtype"] == "bf16")
        ref = (default or best)["value"]

        def ratio(r: dict | None, loop: dict | None = loop) -> str:
            return f"{loop['seconds'] / r['seconds']:.2f}" if (loop and r) else "-"

        print(
            f"{shape:<16} {loop['seconds'] if loop else float('nan'):8.3f} "
            f"{default['seconds'] if default else float('nan'):15.3f} {str(best['chunk']):>10} "
            f"{best['seconds']:12.3f} {ratio(default):>9} {ratio(best):>7} {bf16['seconds']:7.3f} "
            f"{ratio(bf16):>7} {abs(bf16['value'] - ref) / abs(ref):12.2%}"
        )


def parse_shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in text.split(","))
    if len(shape) != 5 or shape[1] != 1:
        raise argparse.ArgumentTypeError(f"shape must be B,1,X,Y,Z, got {text!r}")
    return shape


def parse_chunks(text: str) -> list[int | str]:
    return [s if s == "auto" else 10**9 if s == "all" else int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--shape", type=parse_shape, action="append",
                   help="B,1,X,Y,Z (repeatable; default: 2,1,64,64,64 and 1,1,96,112,96)")
    p.add_argument("--demo", action="store_true",
                   help="also the demo profile's grid at its batch size (tausynth.config.load_profile('demo'))")
    p.add_argument("--chunks", type=parse_chunks, default=parse_chunks("auto,2,4,8,16,all"),
                   help="slices per chunk to sweep; 'auto' = the default pixel budget (tausynth.losses."
                   "perceptual.CHUNK_PIXELS), 'all' = every slice at once (default: auto,2,4,8,16,all)")
    p.add_argument("--plane", default="axial", choices=("axial", "coronal", "sagittal"))
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case; the best is kept (default: 3)")
    p.add_argument("--no-loop", action="store_true", help="skip the per-slice loop")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shapes = list(args.shape or CPU_SHAPES)
    if args.demo:
        from tausynth.config import load_profile

        cfg = load_profile("demo")
        shapes.append((cfg.training.batch_size, 1, *cfg.data.shape))
    features = vgg16_relu4_3("random").to(device)  # speed does not depend on the weights
    env = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
           f"{torch.get_num_threads()} threads, device {device}"
           + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(env)
    rows: list[dict] = []
    for shape in shapes:
        rows += run_shape(shape, device, features, args.chunks, args.plane, args.repeats, not args.no_loop)
    summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
