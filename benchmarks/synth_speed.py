"""Speed of the synthetic cohort generator (goal: <= 1 s per subject on 2 cores).

Prints the template build time, the seconds per subject for 2 mm + 4 mm images (+ ROI table),
and the cost of writing a 4 mm cohort to disk. Never run as a test.

    .venv/bin/python benchmarks/synth_speed.py --n 8
"""

from __future__ import annotations

import argparse
import tempfile
import time

from tausynth.data import atlas, synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="subjects to time (default: 8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    atlas.build_template()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    atlas.load_template()  # from the on-disk cache (built here if absent)
    load_s = time.perf_counter() - t0

    cohort = synthetic.sample_cohort(args.n, args.seed)
    synthetic.simulate_subject(cohort.iloc[0], 0, args.seed)  # warm-up (lookup tables)
    rows = []
    for label, resolution in (("2 mm + 4 mm + ROI table", (2, 4)), ("2 mm + ROI table", 2)):
        t0 = time.perf_counter()
        for i, row in cohort.iterrows():
            synthetic.simulate_subject(row, i, args.seed, resolution=resolution)
        rows.append((label, (time.perf_counter() - t0) / args.n))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthetic.write_cohort(tmp + "/c", n=args.n, seed=args.seed, resolution=4, progress=False)
        rows.append(("write_cohort, 4 mm NIfTI", (time.perf_counter() - t0) / args.n))

    print(f"template build (nilearn + labelling): {build_s:6.2f} s; cached load: {load_s:5.2f} s")
    print(f"{'per subject':32s} {'seconds':>8s}   (n = {args.n})")
    for label, sec in rows:
        print(f"{label:32s} {sec:8.3f}")


if __name__ == "__main__":
    main()
