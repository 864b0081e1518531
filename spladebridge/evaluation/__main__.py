"""`python -m spladebridge.evaluation`: the `eval` subcommand on its own."""

from spladebridge.evaluation.cli import main

raise SystemExit(main())
