"""``chains/`` stands alone: importing every module of it loads nothing of ``recovery/`` or ``app/``."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import importlib, pkgutil, sys
import chains
for module in pkgutil.walk_packages(chains.__path__, "chains."):
    importlib.import_module(module.name)
print(",".join(sorted(k for k in sys.modules if k.split(".")[0] in ("recovery", "app"))))
"""


def test_chains_imports_nothing_of_recovery_or_app() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "", f"chains/ pulled in: {done.stdout.strip()}"


def test_recovery_config_reexports_the_chains_network_type() -> None:
    from chains.network import Network as ChainsNetwork
    from recovery.config import Network

    assert Network is ChainsNetwork
