"""``python -m pyproxy``: the command line."""

from .runtime.cli import main

raise SystemExit(main())
