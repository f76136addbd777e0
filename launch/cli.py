"""What every study command does the same way around its one library call: check the arguments and
--output_dir, log to stderr, and end on an error or Ctrl-C with one line (no traceback)."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

from simadv_jax.report.rundir import Interrupted


def check_arguments(argv: list, output_dir: Optional[str]) -> None:
    """Exits with one line for positional arguments or a missing --output_dir."""
    if len(argv) > 1:
        raise SystemExit(f"error: unexpected arguments: {' '.join(argv[1:])}")
    if not output_dir:
        raise SystemExit("error: --output_dir: required")


def log(message: str) -> None:
    """A note for the user, on stderr."""
    print(message, file=sys.stderr, flush=True)


def run(call: Callable[[], Any], *, progress=None, before: str = "the first step") -> Any:
    """call(); a ValueError (bad flags, bad files, file-system failures) ends the process with "error: ...", Ctrl-C
    with the Interrupted message (or "interrupted before `before`") and exit status 130. `progress`: closed
    either way."""
    try:
        return call()
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    except KeyboardInterrupt as e:
        log(str(e) if isinstance(e, Interrupted) else f"interrupted before {before}; continue with --resume")
        raise SystemExit(130) from None
    finally:
        if progress is not None:
            progress.close()
