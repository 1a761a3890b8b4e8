"""A bad setting stops every command with one line naming it (exit 2), never a traceback, and a
secret's value is never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import cli
from recovery.settings import get_settings


@pytest.mark.parametrize("argv", [["cases", "list"], ["recheck", "--network", "xrpl"], ["audit", "verify"]])
def test_a_bad_setting_is_named_and_ends_the_command(argv: list[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("RECOVERY_WEBHOOK_URLS", "https://ok.example/hook ftp://not-http.example/x")
    monkeypatch.setenv("RECOVERY_WEBHOOK_SECRET", "s3cret-value-that-must-not-leak")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, argv)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "RECOVERY_WEBHOOK_URLS" in result.stderr and "ftp://not-http.example/x" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert "s3cret-value-that-must-not-leak" not in result.output + result.stderr
