"""What the browser tests share: Debian's chromium (headless, through playwright; never a
downloaded browser) and ``recovery workbench`` started on a free loopback port over a test database."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from app.demo.serving import free_port, serve
from recovery.db import Database
from recovery.settings import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: a loaded machine: wait on selectors up to a minute, never sleep
TIMEOUT_MS = 60_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def running_workbench(db: Database, folder: Path) -> Iterator[str]:
    """``recovery workbench`` over ``db`` (the shipped configuration, state and log in ``folder``),
    answering its health check; yields its base URL and stops its process group afterwards."""
    port = free_port()
    env = {**os.environ, "RECOVERY_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
           "RECOVERY_CONFIG_DIR": str(REPO_ROOT / "config"), "RECOVERY_VAR_DIR": str(folder / "var"),
           "HOME": str(folder)}
    recovery = str(Path(sys.executable).with_name("recovery"))
    base = f"http://127.0.0.1:{port}"
    with serve([recovery, "workbench", "--port", str(port)], env, f"{base}/_stcore/health",
               folder / "workbench.log"):
        yield base
