from tausynth.cli import main; raise SystemExit(main())
