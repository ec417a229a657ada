"""``python -m stemprover`` is the ``stemprover`` command."""

from stemprover.cli import main

raise SystemExit(main())
