"""``python -m pyproxy``: the command line."""

from .cli import main

raise SystemExit(main())
