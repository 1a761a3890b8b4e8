"""Which pages each role sees. The action forms inside a page follow ``recovery/lifecycle.py``."""

from __future__ import annotations

from dataclasses import dataclass

from recovery.lifecycle import ACTIONS
from recovery.vocabulary import Role

ALL = frozenset({Role.SPECIALIST, Role.APPROVER, Role.ADMIN, Role.AUDITOR})


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to main.py
    title: str
    icon: str
    section: str
    roles: frozenset[Role]
    url_path: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("views/queue.py", "Queue", ":material/inbox:", "Cases", ALL, "queue"),
    PageSpec("views/case.py", "Case", ":material/description:", "Cases", ALL, "case"),
    PageSpec("views/approvals.py", "Approvals", ":material/approval:", "Cases",
             frozenset({Role.APPROVER, Role.ADMIN}), "approvals"),
    # Opening a case is the "submit" action: whoever the transition table lets open one.
    PageSpec("views/new_appeal.py", "New appeal", ":material/add_circle:", "Cases",
             frozenset(ACTIONS["submit"].roles) & ALL, "new-appeal"),
    PageSpec("views/dashboard.py", "Dashboard", ":material/monitoring:", "Overview", ALL, "dashboard"),
    PageSpec("views/audit.py", "Audit", ":material/verified_user:", "Overview",
             frozenset({Role.APPROVER, Role.ADMIN, Role.AUDITOR}), "audit"),
    PageSpec("views/configuration.py", "Configuration", ":material/tune:", "Settings", ALL, "configuration"),
    PageSpec("views/operators.py", "Operators", ":material/group:", "Settings",
             frozenset({Role.ADMIN, Role.AUDITOR}), "operators"),
)


def pages_for(role: Role) -> list[PageSpec]:
    return [page for page in PAGES if role in page.roles]


def can(role: Role, action: str) -> bool:
    """Whether the role may ever take this action (the service still checks status and case)."""
    rule = ACTIONS.get(action)
    return rule is not None and role in rule.roles
