"""`recovery demo --no-serve` as the tests run it, and private copies of one run's folder."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

RECOVERY = str(Path(sys.executable).with_name("recovery"))


def run_demo(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_") or k == "RECOVERY_FIXTURES_DIR"}
    return subprocess.run(
        [RECOVERY, "demo", "--no-serve", "--root", str(root), *args],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )


def demo_copy(run: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A private copy of a finished demo run's folder (database, audit key, configuration, imports)
    in ``folder``, and the run's JSON summary with its paths pointing into the copy."""
    root = Path(run["root"])
    copy = folder / root.name
    shutil.copytree(root, copy)

    def moved(value: str) -> str:
        assert str(root) in value, value
        return value.replace(str(root), str(copy))

    return {**run, "root": str(copy), "database_url": moved(run["database_url"]),
            "config_dir": moved(run["config_dir"])}


def shared_demo_run(folder: Path, *args: str) -> dict[str, Any]:
    """The JSON summary of ``recovery demo --no-serve <args>`` run once in ``folder/demo`` by
    whichever process (pytest-xdist worker) gets there first; the others wait for it on a lock
    file and read the summary it left (``--json`` must be among ``args``)."""
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "summary.json"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not summary_path.exists():
            root = folder / "demo"
            done = run_demo(root, *args)
            assert done.returncode == 0, done.stderr
            summary: dict[str, Any] = json.loads(done.stdout)
            assert summary["root"] == str(root)
            summary_path.write_text(json.dumps(summary), encoding="utf-8")
    loaded: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    return loaded
