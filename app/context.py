"""What every front end needs at start-up: settings, configuration, database, services."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from recovery.config import Config, load_config
from recovery.db import Database, connect
from recovery.services import CaseService
from recovery.settings import Settings, get_settings


@dataclass
class AppContext:
    settings: Settings

    @cached_property
    def config(self) -> Config:
        return load_config(self.settings.config_dir)

    @cached_property
    def db(self) -> Database:
        return connect(self.settings.resolved_database_url())

    @cached_property
    def cases(self) -> CaseService:
        return CaseService(self.db, self.config)


def app_context(settings: Settings | None = None) -> AppContext:
    return AppContext(settings or get_settings())
