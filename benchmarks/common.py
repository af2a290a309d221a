"""What every benchmark script shares: bad input ends in one line on stderr and exit status 2,
as it does for the ``colonsim`` command."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def run(main: Callable[[], int | None]) -> None:
    """Run a benchmark's ``main`` and exit with its status; a ColonSimError becomes one line."""
    from colonsim.errors import ColonSimError

    try:
        status = main()
    except ColonSimError as e:
        message = " ".join(str(e).split())
        sys.stderr.write(f"{Path(sys.argv[0]).name}: error: {message}\n")
        sys.exit(2)
    sys.exit(status or 0)
