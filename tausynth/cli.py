"""Command-line interface: ``tausynth synth | validate | prepare | standardize | ...``.

User errors (:class:`tausynth.errors.TausynthError`) are printed as one line per problem on
stderr, prefixed with ``tausynth <command>: error:``, and the process exits with status 2; no
traceback is shown for them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tausynth.config import PROFILES
from tausynth.errors import TausynthError, ValidationErrors

Handler = Callable[[argparse.Namespace], int]


def _cmd_synth(args: argparse.Namespace) -> int:
    from tausynth.data.synthetic import write_cohort

    manifest = write_cohort(
        args.out,
        n=args.n,
        seed=args.seed,
        resolution=args.resolution,
        confound=args.confound,
        travelling=args.travelling,
        progress=not args.quiet,
        workers=args.workers,
    )
    print(f"wrote {len(manifest)} scans to {args.out}/manifest.csv and {args.out}/subjects.csv")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from tausynth.data.manifest import validate_manifest

    summary = validate_manifest(args.manifest, affine_tolerance=args.affine_tolerance)
    print(f"OK: {summary}")
    return 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic paired T1w / flortaucipir cohort")
    p.add_argument("--n", type=int, default=24, help="number of subjects (default: 24)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--resolution", type=int, choices=(2, 4), default=4, help="voxel size in mm (default: 4)")
    p.add_argument("--out", required=True, help="output folder (manifest.csv, subjects.csv, images)")
    p.add_argument("--confound", action="store_true", help="enrich AD on Philips (the standardization pitfall)")
    p.add_argument("--travelling", action="store_true", help="scan every subject on all three manufacturers")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="processes simulating subjects at a time (same cohort for any N; default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_synth)


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a data manifest and every file it names")
    p.add_argument("manifest", help="manifest CSV")
    p.add_argument(
        "--affine-tolerance", type=float, default=1e-3,
        help="largest allowed absolute difference between T1 and PET affines, in mm (default: 1e-3)",
    )
    p.set_defaults(handler=_cmd_validate)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tausynth.data.manifest import validate_manifest
    from tausynth.plotting.prepare import write_qc_report
    from tausynth.prepare import prepare

    results = prepare(args.raw, args.out, resolution=args.resolution, jobs=args.jobs, progress=not args.quiet)
    report = write_qc_report(Path(args.out), results)
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"tausynth prepare: error: {r.line}", file=sys.stderr)
    counts = {s: sum(r.status == s for r in results) for s in ("prepared", "skipped", "failed")}
    manifest = Path(args.out) / "manifest.csv"
    if len(failed) < len(results):
        print(f"OK: {validate_manifest(manifest)}")  # what tausynth validate will say of it
    print(f"prepare: {counts['prepared']} prepared, {counts['skipped']} already done, {counts['failed']} failed; "
          f"manifest {manifest if len(failed) < len(results) else '(none)'}; QC {report}")
    return 1 if failed else 0


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="raw T1w and PET scans (NIfTI or DICOM) to a manifest, with a QC report")
    p.add_argument("--raw", required=True, metavar="RAW.csv",
                   help="identity columns of the manifest, and t1 / pet naming a NIfTI file or a DICOM folder")
    p.add_argument("--out", required=True, help="output folder (manifest.csv, one folder per scan, qc/index.html)")
    p.add_argument("--resolution", type=int, choices=(2, 4), default=2, help="voxel size in mm (default: 2)")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="scans prepared at a time, sharing the CPU cores (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_prepare)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _cmd_book(args: argparse.Namespace) -> int:
    from tausynth import book

    if args.book_command == "run":
        book.run_book(args.profile, only=args.only, force=args.force, manifest=args.manifest, jobs=args.jobs,
                      runs=args.runs)
    elif args.book_command == "build":
        index = book.build_book(warningiserror=not args.allow_warnings)
        print(f"book: {index}")
    else:
        from tausynth.browser import check_book

        reports = check_book(args.html, args.screenshots)
        problems = [p for r in reports for p in r.problems]
        for r in reports:
            print(f"{r.page:40s} {r.images:3d} image(s)  {len(r.problems)} problem(s)  {r.screenshot}")
        if problems:
            raise ValidationErrors(problems)
        print(f"OK: {len(reports)} page(s) checked in Chromium")
    return 0


def _add_book(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("book", help="execute the chapters with papermill, or render the book")
    bsub = p.add_subparsers(dest="book_command", required=True, metavar="ACTION")
    run = bsub.add_parser("run", help="execute every chapter with papermill (skips unchanged ones)")
    run.add_argument("--profile", choices=PROFILES, default="demo")
    run.add_argument("--only", metavar="CHAPTER", help="execute this chapter only")
    run.add_argument("--force", action="store_true", help="re-execute even unchanged chapters")
    run.add_argument("--manifest", help="run on this data manifest instead of the synthetic cohort")
    run.add_argument("--runs", metavar="FILE.yaml",
                     help="train the runs listed under 'runs:' in this YAML instead of the profile's")
    run.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                     help="execute up to N independent chapters at a time, sharing the CPU cores (default: 1)")
    build = bsub.add_parser("build", help="render _build/html with Jupyter Book from the executed chapters")
    build.add_argument("--allow-warnings", action="store_true", help="do not fail on Sphinx warnings")
    check = bsub.add_parser("check", help="open every rendered page in headless Chromium and check it")
    check.add_argument("--html", default="_build/html", help="rendered book (default: _build/html)")
    check.add_argument("--screenshots", default="_build/screenshots", help="folder for page screenshots")
    p.set_defaults(handler=_cmd_book)


def _cmd_standardize(args: argparse.Namespace) -> int:
    from tausynth.data.manifest import TRAINING_COLUMNS, validate_manifest
    from tausynth.io import check_writable_file
    from tausynth.suvr import fit_from_manifest

    check_writable_file(args.out)  # before the fit, not after it
    validate_manifest(args.manifest, columns=TRAINING_COLUMNS, splits=("train",))
    std = fit_from_manifest(args.manifest, split="train", fallback=args.fallback, reference=args.reference)
    std.save(args.out)
    table = std.summary_frame()
    print(table.to_string(index=False, formatters={"mean": "{:.4f}".format, "std": "{:.4f}".format}))
    print(f"fitted on split == train; reference {std.reference_}; wrote {args.out}")
    return 0


def _add_standardize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "standardize", help="fit by-manufacturer SUVR standardization on the training split"
    )
    p.add_argument("--manifest", required=True, help="manifest CSV (PET as SUVR maps, brain masks)")
    p.add_argument("--out", required=True, help="statistics JSON to write")
    p.add_argument(
        "--fallback", choices=("error", "pooled"), default="error",
        help="unseen manufacturers: raise an error (default) or use pooled statistics",
    )
    p.add_argument("--reference", default=None, help="reference manufacturer scale (default: most subjects)")
    p.set_defaults(handler=_cmd_standardize)


def _train_config(args: argparse.Namespace) -> object:
    from tausynth.config import Config, from_dict, load_config, load_profile

    overrides: dict[str, dict[str, object] | object] = {}
    sections = {
        ("model", "name"): args.model,
        ("loss", "perceptual"): args.loss,
        ("training", "seed"): args.seed,
        ("training", "max_epochs"): args.max_epochs,
    }
    for (section, key), value in sections.items():
        if value is not None:
            overrides.setdefault(section, {})[key] = value  # type: ignore[index]
    if args.normalization is not None:
        overrides["normalization"] = args.normalization
    if args.config is None:
        return load_profile(args.profile or "demo", overrides)
    cfg = load_config(args.config)
    if not overrides:
        return cfg
    merged = cfg.to_dict()
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return from_dict(Config, merged)


def _cmd_train(args: argparse.Namespace) -> int:
    from tausynth.training import TrainingInterrupted, run_dir_for, train

    if args.config is not None and args.profile is not None:
        raise TausynthError("give either --config or --profile, not both")
    cfg = _train_config(args)
    run_dir = args.run_dir or run_dir_for(cfg, args.runs_root, args.run_name)  # type: ignore[arg-type]
    try:
        train(
            cfg,  # type: ignore[arg-type]
            run_dir,
            runs_root=args.runs_root,
            manifest=args.manifest,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except TrainingInterrupted as exc:
        print(f"tausynth train: {exc}", file=sys.stderr)
        return 130
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (or resume a run) with the paper's schedule")
    p.add_argument("--config", help="run configuration YAML (a 'profile' key selects its base)")
    p.add_argument("--profile", help="smoke | demo | study | paper (default: demo, unless --config)")
    p.add_argument("--model", help="unet | unetr | swinunetr | pix2pix | cyclegan")
    p.add_argument("--loss", help="perceptual term: none | 2d | 2.5d | cyclic | 3d")
    p.add_argument("--normalization", help="PET normalization: standardize | minmax")
    p.add_argument("--seed", type=int, help="training seed")
    p.add_argument("--max-epochs", type=int, help="override training.max_epochs")
    p.add_argument("--manifest", help="data manifest (default: data.manifest, else the synthetic cohort)")
    p.add_argument("--runs-root", default="runs", help="parent of <profile>/<run> folders (default: runs)")
    p.add_argument("--run-name", help="run folder name (default: <model>-<loss>-<normalization>-s<seed>)")
    p.add_argument("--run-dir", help="explicit run folder (overrides --runs-root and --run-name)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder exactly")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars (one line per epoch)")
    p.set_defaults(handler=_cmd_train)


def _cmd_predict(args: argparse.Namespace) -> int:
    from tausynth.training import predict_run

    predict_run(
        args.run, args.manifest, args.split, out=args.out, checkpoint=args.checkpoint, device=args.device
    )
    return 0


def _add_run_split_out(p: argparse.ArgumentParser, run_help: str, out_help: str) -> None:
    """The options ``predict`` and ``evaluate`` share: which run, on which manifest and split, written where."""
    p.add_argument("--run", required=True, help=run_help)
    p.add_argument("--manifest", help="data manifest (default: the one the run was trained on)")
    p.add_argument("--split", default="test", help="train | val | test (default: test)")
    p.add_argument("--out", help=out_help)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write a run's synthetic PET (float32 NIfTI, SUVR) for one split")
    _add_run_split_out(p, "run folder", "output folder (default: <run>/predictions/<split>)")
    p.add_argument("--checkpoint", help="checkpoint (default: <run>/checkpoints/final_model.pt)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(handler=_cmd_predict)


def _cmd_study(args: argparse.Namespace) -> int:
    from tausynth import study

    if args.study_command == "run":
        statuses = study.run_study(args.profile, jobs=args.jobs, runs=args.runs)
        print(f"study {args.profile}: {sum(s == 'finished' for s in statuses.values())}/{len(statuses)} run(s) finished")
    else:
        study.archive_study(args.profile, dest=args.out, split=args.split, runs=args.runs)
    return 0


def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="train a profile's whole run list without the book, then archive its tables")
    ssub = p.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    run = ssub.add_parser("run", help="train every run of the run list (resumes; reuses finished runs)")
    archive = ssub.add_parser("archive", help="evaluate the finished runs and write archive/<profile>/")
    for q in (run, archive):
        q.add_argument("--profile", choices=PROFILES, default="study")
        q.add_argument("--runs", metavar="FILE.yaml", help="the runs listed under 'runs:' in this YAML instead")
    run.add_argument("--jobs", type=_positive_int, default=2, metavar="N",
                     help="runs trained at a time, sharing the CPU cores (default: 2)")
    archive.add_argument("--out", help="archive folder (default: archive/<profile>)")
    archive.add_argument("--split", default="test", help="split evaluated (default: test)")
    p.set_defaults(handler=_cmd_study)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``tausynth`` argument parser with every sub-command."""
    from tausynth import __version__

    parser = argparse.ArgumentParser(
        prog="tausynth", description="T1w MRI to tau PET synthesis with the cyclic 2.5D perceptual loss."
    )
    parser.add_argument("--version", action="version", version=f"tausynth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tausynth.evaluation.collect import evaluate_cached, evaluation_dir

    # Missing or stale predictions are written first (predict_run), announced in one line.
    ev, _ = evaluate_cached(args.run, args.manifest, args.split, cut_point=args.cut_point, out=args.out, force=True)
    out = Path(args.out) if args.out else evaluation_dir(args.run, args.split)
    if not args.no_figures:
        import pandas as pd

        from tausynth.data.manifest import load_manifest
        from tausynth.evaluation.collect import run_manifest
        from tausynth.evaluation.evaluate import prediction_files
        from tausynth.plotting.evaluation import write_run_figures
        from tausynth.training.run import RunPaths

        predictions = pd.read_csv(RunPaths(args.run).predictions_table(args.split), keep_default_na=False)
        files = prediction_files(predictions, load_manifest(run_manifest(args.run, args.manifest)))
        ev.files += write_run_figures(ev, out / "figures", files)
    for _, row in ev.summary.iterrows():
        print(f"{row['kind']:12s} n={row['n_subjects']}  SSIM {row['ssim']}  PSNR {row['psnr']} dB  MAE {row['mae']} SUVR")
    if not ev.agreement.empty:
        a = ev.agreement[(ev.agreement["group"] == "all") & (ev.agreement["region"] == "metatemporal")]
        for _, r in a.iterrows():
            print(f"meta-temporal SUVR: r {r['pearson_r']:.3f}  {r['icc_form']} {r['icc']:.3f}  MAE {r['mae']:.3f}  "
                  f"bias {r['bias']:+.3f}")
    if not ev.positivity.empty:
        k = ev.positivity[ev.positivity["group"] == "all"].iloc[0]
        print(f"tau positivity (meta-temporal SUVR > {k['cut_point']:g}): kappa {k['kappa']:.3f}, "
              f"{k['percent_agreement']:.0f} % agreement")
    n_csv = sum(p.suffix == ".csv" for p in ev.files)
    print(f"wrote {n_csv} tables and {len(ev.files) - n_csv} figures to {out}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a run's synthetic PET: voxel metrics, Braak-region agreement, figures")
    _add_run_split_out(p, "run folder (predictions are made first when missing or stale)",
                       "output folder (default: <run>/evaluation, or <run>/evaluation/<split>)")
    p.add_argument("--cut-point", "--cut", dest="cut_point", type=float, default=1.27,
                   help="meta-temporal SUVR tau-positivity cut-point, positive when above (default: 1.27)")
    p.add_argument("--no-figures", action="store_true", help="write the CSV tables only")
    p.set_defaults(handler=_cmd_evaluate)


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_synth, _add_validate, _add_prepare, _add_book, _add_standardize, _add_train, _add_predict, _add_evaluate, _add_study,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ValidationErrors as exc:
        for line in exc.problems:
            print(f"tausynth {args.command}: error: {line}", file=sys.stderr)
        if args.command == "validate" or len(exc.problems) > 1:  # validate's report always ends with the count
            print(f"tausynth {args.command}: {len(exc.problems)} problem(s) found", file=sys.stderr)
        return 2
    except TausynthError as exc:
        print(f"tausynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable path, a full disk: one line, not a traceback
        from tausynth.io import os_error_line

        print(f"tausynth {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tausynth {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
