"""``python -m tausynth`` runs the command-line interface."""

from tausynth.cli import main

raise SystemExit(main())
