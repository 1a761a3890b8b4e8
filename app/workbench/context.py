"""What every workbench page needs: configuration, database, the case service, chains, settings.

The running app builds one :class:`Workbench` per process from the environment (``RECOVERY_*``)
and shares it between sessions. Tests install their own (seeded database, hand-moved clock,
local chains) with :func:`install`; AppTest runs the pages in the test's own process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import streamlit as st
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from recovery.checking import CaseChecker, ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.services import CaseService


class WorkbenchSettings(BaseSettings):
    """Workbench-only settings (environment prefix ``RECOVERY_WORKBENCH_``)."""

    model_config = SettingsConfigDict(env_prefix="RECOVERY_WORKBENCH_", extra="ignore")

    idle_minutes: int = Field(default=30, gt=0, description="A session ends after this long without activity.")
    session_hours: int = Field(default=12, gt=0, description="A session ends this long after sign-in.")
    page_size: int = Field(default=50, ge=10, le=500)
    recheck_timeout_seconds: float = Field(default=20.0, gt=0)
    #: OIDC (st.login): the claim holding the e-mail address (used only when the token says it is
    #: verified), and the one domain accepted for it (unset: identities match by issuer and subject only)
    oidc_claim: str = "email"
    oidc_email_domain: str | None = None
    oidc_provider: str | None = Field(default=None, description="Provider name under [auth] in secrets.toml.")
    #: approvers and admins cannot sign in without a second factor (recommended in production)
    require_totp: bool = Field(default=False, description="RECOVERY_WORKBENCH_REQUIRE_TOTP=1: approvers and "
                                                          "admins need a TOTP second factor.")
    #: behind a reverse proxy that sets X-Forwarded-For: count failed sign-ins by its last entry
    trust_forwarded_for: bool = False


@dataclass
class Workbench:
    config: Config
    db: Database
    cases: CaseService
    settings: WorkbenchSettings = field(default_factory=WorkbenchSettings)
    gateway_override: ChainGateway | None = None

    def now(self) -> datetime:
        return self.cases.clock()

    @cached_property
    def gateway(self) -> ChainGateway:
        return self.gateway_override or ChainGateway(self.config)

    @property
    def checker(self) -> CaseChecker:
        return CaseChecker(self.cases, self.gateway)


_installed: Workbench | None = None


def install(workbench: Workbench | None) -> None:
    """Use this workbench (tests); None goes back to the one built from the environment."""
    global _installed
    _installed = workbench


@st.cache_resource(show_spinner=False)
def _from_environment() -> Workbench:
    from app.context import app_context

    ctx = app_context()
    return Workbench(config=ctx.config, db=ctx.db, cases=ctx.cases)


def current() -> Workbench:
    return _installed if _installed is not None else _from_environment()
