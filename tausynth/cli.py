"""Command-line interface: ``tausynth synth | validate | standardize | ...``.

User errors (:class:`tausynth.errors.TausynthError`) are printed as one line per problem on
stderr, prefixed with ``tausynth <command>: error:``, and the process exits with status 2; no
traceback is shown for them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

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


def _cmd_book(args: argparse.Namespace) -> int:
    from tausynth import book

    if args.book_command == "run":
        book.run_book(args.profile, only=args.only, force=args.force, manifest=args.manifest)
    else:
        index = book.build_book(warningiserror=not args.allow_warnings)
        print(f"book: {index}")
    return 0


def _add_book(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("book", help="execute the chapters with papermill, or render the book")
    bsub = p.add_subparsers(dest="book_command", required=True, metavar="ACTION")
    run = bsub.add_parser("run", help="execute every chapter with papermill (skips unchanged ones)")
    run.add_argument("--profile", choices=("smoke", "demo", "paper"), default="demo")
    run.add_argument("--only", metavar="CHAPTER", help="execute this chapter only")
    run.add_argument("--force", action="store_true", help="re-execute even unchanged chapters")
    run.add_argument("--manifest", help="run on this data manifest instead of the synthetic cohort")
    build = bsub.add_parser("build", help="render _build/html with Jupyter Book from the executed chapters")
    build.add_argument("--allow-warnings", action="store_true", help="do not fail on Sphinx warnings")
    p.set_defaults(handler=_cmd_book)


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


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_synth, _add_validate, _add_book]


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
        print(f"tausynth {args.command}: {len(exc.problems)} problem(s) found", file=sys.stderr)
        return 2
    except TausynthError as exc:
        print(f"tausynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tausynth {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
