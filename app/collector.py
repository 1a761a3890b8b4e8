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

#: set by the ``recovery`` entry point (:func:`app.cli.main`): the process ends when its command
#: returns, so what a batch run froze may stay frozen (see :func:`batch_collection`)
_process_ends_with_command = False


def process_ends_with_command() -> None:
    """Say that this process ends when the command it runs returns (the CLI's entry point)."""
    global _process_ends_with_command
    _process_ends_with_command = True


def freeze_startup() -> None:
    """Collect once, then keep every object alive now out of the collector's generations."""
    gc.collect()
    gc.freeze()


@contextmanager
def batch_collection() -> Iterator[None]:
    """For the duration of a batch run: start-up objects frozen, a larger first generation. Both are
    restored afterwards (the CLI's commands also run inside one test process), except that in a
    process that ends with the command the start-up objects stay frozen: its last collection
    (:func:`freeze_startup` at exit) then walks only what the run left, not the whole start-up
    (web3, the models, the configuration: some 50 ms) once more."""
    freeze_startup()
    previous = gc.get_threshold()
    gc.set_threshold(BATCH_GEN0_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        if not _process_ends_with_command:
            gc.unfreeze()
