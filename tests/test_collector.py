"""The garbage-collector settings of a batch run (``app/collector.py``): restored afterwards inside a
process that goes on (tests, several commands in one process), the start-up left frozen in the
``recovery`` process, which ends with its command (its exit collection then skips the start-up)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from app.collector import BATCH_GEN0_THRESHOLD, batch_collection
from recovery.settings import REPO_ROOT

_ENDS_WITH_COMMAND = """
import gc, json
from app import collector
collector.process_ends_with_command()
with collector.batch_collection():
    during = gc.get_freeze_count()
print(json.dumps({"during": during, "after": gc.get_freeze_count(), "threshold": gc.get_threshold()[0]}))
"""


def test_a_batch_run_restores_the_collector_in_a_process_that_goes_on() -> None:
    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    with batch_collection():
        assert gc.get_freeze_count() > frozen and gc.get_threshold()[0] == BATCH_GEN0_THRESHOLD
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() <= frozen  # nothing this run froze stays frozen


def test_the_recovery_process_keeps_its_start_up_frozen_after_a_batch_run() -> None:
    done = subprocess.run([sys.executable, "-c", _ENDS_WITH_COMMAND], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60, check=True)
    data = json.loads(done.stdout)
    assert data["during"] > 0 and data["after"] > data["during"] // 2  # (unfrozen: 0)
    assert data["threshold"] != BATCH_GEN0_THRESHOLD
