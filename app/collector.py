"""Garbage-collector settings for the long-running processes: the API server and the batch runs.

Everything built at start-up (configuration, schemas, SQLAlchemy metadata, web3, the chain codecs)
lives as long as the process; frozen, it is no longer walked by every full collection (with it,
each one cost some 120 ms in a re-check run). A batch run then allocates tens of thousands of
short-lived containers per batch, nearly all freed by reference counting: a larger first
generation keeps the collector from running hundreds of times per run for nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: first-generation threshold during a batch run (CPython's default is 700)
BATCH_GEN0_THRESHOLD = 20_000


def freeze_startup() -> None:
    """Collect once, then keep every object alive now out of the collector's generations."""
    gc.collect()
    gc.freeze()


@contextmanager
def batch_collection() -> Iterator[None]:
    """For the duration of a batch run: start-up objects frozen, a larger first generation. Both are
    restored afterwards (the CLI's commands also run inside one test process)."""
    freeze_startup()
    previous = gc.get_threshold()
    gc.set_threshold(BATCH_GEN0_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
