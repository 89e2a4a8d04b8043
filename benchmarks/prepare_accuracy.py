"""``tausynth prepare`` on raw-like subjects with 1 mm T1s: accuracy against the truth, and time per scan.

Writes ``--n`` raw-like subjects from the synthetic cohort (1 mm T1 with scalp, stored LPS; a 4-frame
PET displaced by a random rigid motion of up to ``--max-rotation`` degrees and ``--max-translation``
mm on its own grid; every other subject as DICOM series), prepares them one at a time (``--jobs 1``,
so each scan's time is its own) and scores each against its truth
(:func:`tausynth.prepare.rawlike.score_prepared`): the PET→T1 error inside the brain, the brain mask's
Dice and the meta-temporal SUVR's relative error. The acceptance limits are 1.5 mm, 0.9 and 5 %.

Run: ``nice -n 19 python benchmarks/prepare_accuracy.py --out /tmp/prep-bench --n 6``. The table
(Markdown) is printed and written to ``OUT/prepare_accuracy.md``; per-step times come from each
scan's ``provenance.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_subjects(raw: Path, n: int, seed: int, max_rotation: float, max_translation: float) -> Path:
    """Raw-like subjects and their ``RAW.csv``; the table's path."""
    from tausynth.data.synthetic import sample_cohort
    from tausynth.prepare.rawlike import write_rawlike_subject

    rng = np.random.default_rng(seed)
    rows = []
    for i, subject in sample_cohort(n, seed).iterrows():
        dicom = i % 2 == 1
        paths, _ = write_rawlike_subject(
            raw / subject.subject_id, subject, i, seed, t1_voxel_mm=1.0, dicom=dicom, pet_dicom=dicom,
            rotation_deg=tuple(rng.uniform(-max_rotation, max_rotation, 3)),
            translation_mm=tuple(rng.uniform(-max_translation, max_translation, 3)))
        rows.append({"subject_id": subject.subject_id, "t1": paths["t1"], "pet": paths["pet"],
                     "manufacturer": subject.manufacturer, "diagnosis": subject.diagnosis,
                     "split": subject.split})
    pd.DataFrame(rows).to_csv(raw / "RAW.csv", index=False)
    return raw / "RAW.csv"


def score(raw: Path, out: Path) -> pd.DataFrame:
    """One row per prepared scan: accuracy, input format and the step times from provenance."""
    from tausynth.prepare.rawlike import score_prepared

    rows = []
    for scan in pd.read_csv(raw / "RAW.csv").itertuples():
        prov = json.loads((out / scan.subject_id / "provenance.json").read_text())
        steps = prov["step_seconds"]
        rows.append({"scan": scan.subject_id, "input": "DICOM" if Path(scan.t1).is_dir() else "NIfTI",
                     **{k: round(v, 3) for k, v in score_prepared(out / scan.subject_id, raw / scan.subject_id).items()},
                     "seconds": round(sum(steps.values()), 1),
                     **{f"{k}_s": round(v, 1) for k, v in steps.items()}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="scratch folder")
    parser.add_argument("--n", type=int, default=6, help="subjects (default: 6)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--max-rotation", type=float, default=8.0, help="degrees about each axis (default: 8)")
    parser.add_argument("--max-translation", type=float, default=12.0, help="mm along each axis (default: 12)")
    args = parser.parse_args()
    root = Path(args.out)
    raw_csv = write_subjects(root / "raw", args.n, args.seed, args.max_rotation, args.max_translation)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tausynth", "prepare", "--raw", str(raw_csv), "--out", str(root / "out"),
                    "--jobs", "1", "--quiet"], check=True)
    wall = time.perf_counter() - start
    table = score(root / "raw", root / "out")
    text = table.to_markdown(index=False) + (
        f"\n\n{len(table)} scans in {wall:.0f} s wall ({wall / len(table):.1f} s per scan, --jobs 1, "
        f"including start-up). Worst: {table.registration_error_mm.max():.2f} mm, Dice "
        f"{table.mask_dice.min():.3f}, SUVR {table.metatemporal_error_pct.max():.2f} %.\n")
    print(text)
    (root / "prepare_accuracy.md").write_text(text)


if __name__ == "__main__":
    main()
