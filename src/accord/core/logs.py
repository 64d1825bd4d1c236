"""One way to log: every workflow step logs to its rule's log file through `run_step`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from accord.core.errors import AccordError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def run_step(log_path: str | Path | None, name: str = "accord") -> Iterator[logging.Logger]:
    """Log to `log_path`; turn a deliberate AccordError into one clear message and exit code 1.

    A study's own fault (a missing column, a suspected identifier) is not a crash: the reader
    gets the message, on the console and in the log, without a traceback.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    handlers.append(console)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield logging.getLogger(name)
    except AccordError as exc:
        root.removeHandler(console)
        logging.getLogger(name).error(str(exc))
        print(f"\naccord: {exc}\n", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as exc:
        # Not a fault of the study: a bug or an unreadable file. The traceback goes to the
        # log; the console gets one line naming the step and the log.
        root.removeHandler(console)
        logging.getLogger(name).exception("unexpected error")
        step = Path(log_path).with_suffix("").as_posix() if log_path else name
        print(
            f"\naccord: step {step} failed: {type(exc).__name__}: {exc} (traceback in "
            f"{log_path})\n",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
