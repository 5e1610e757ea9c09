"""``python -m occ.cli``: the same as the ``occ`` command."""

from occ.cli.main import main

raise SystemExit(main())
