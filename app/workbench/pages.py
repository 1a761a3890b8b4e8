"""Which pages each role sees. The action forms inside a page follow ``recovery/lifecycle.py``."""

from __future__ import annotations

from dataclasses import dataclass

from recovery.lifecycle import ACTIONS
from recovery.vocabulary import Role

ALL = frozenset({Role.SPECIALIST, Role.APPROVER, Role.ADMIN, Role.AUDITOR})


@dataclass(frozen=True)
class PageSpec:
    """One page (no icon: a Material icon would become the tab's favicon, which the browser fetches
    from Google, and nothing may leave the machine)."""

    path: str  # relative to main.py
    title: str
    section: str
    roles: frozenset[Role]
    url_path: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("views/queue.py", "Queue", "Cases", ALL, "queue"),
    PageSpec("views/case.py", "Case", "Cases", ALL, "case"),
    PageSpec("views/approvals.py", "Approvals", "Cases",
             frozenset({Role.APPROVER, Role.ADMIN}), "approvals"),
    # Opening a case is the "submit" action: whoever the transition table lets open one.
    PageSpec("views/new_appeal.py", "New appeal", "Cases",
             frozenset(ACTIONS["submit"].roles) & ALL, "new-appeal"),
    PageSpec("views/dashboard.py", "Dashboard", "Overview", ALL, "dashboard"),
    PageSpec("views/audit.py", "Audit", "Overview",
             frozenset({Role.APPROVER, Role.ADMIN, Role.AUDITOR}), "audit"),
    PageSpec("views/configuration.py", "Configuration", "Settings", ALL, "configuration"),
    PageSpec("views/operators.py", "Operators", "Settings",
             frozenset({Role.ADMIN, Role.AUDITOR}), "operators"),
)


def pages_for(role: Role) -> list[PageSpec]:
    return [page for page in PAGES if role in page.roles]


def can(role: Role, action: str) -> bool:
    """Whether the role may ever take this action (the service still checks status and case)."""
    rule = ACTIONS.get(action)
    return rule is not None and role in rule.roles
