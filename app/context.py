"""What every front end needs at start-up: settings, configuration, database, services.

Each part is built, and its modules imported, when first asked for: a command that only reads
the settings does not load the configuration, the database layer or the service layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from recovery.settings import Settings, get_settings

if TYPE_CHECKING:
    from recovery.config import Config
    from recovery.db import Database
    from recovery.services import CaseService


@dataclass
class AppContext:
    settings: Settings

    @cached_property
    def config(self) -> Config:
        from recovery.config import load_config

        return load_config(self.settings.config_dir)

    @cached_property
    def db(self) -> Database:
        from recovery.db import connect

        return connect(self.settings.resolved_database_url())

    @cached_property
    def cases(self) -> CaseService:
        from recovery.services import CaseService

        return CaseService(self.db, self.config)


def app_context(settings: Settings | None = None) -> AppContext:
    return AppContext(settings or get_settings())
