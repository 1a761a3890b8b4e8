"""Each operator's own saved queue views: a name and the queue's URL query string (the filters,
sort and search the page keeps in its address, ``app/workbench/views/queue.py``).

A view belongs to one operator: listed, saved and deleted only by name for that operator. A view
is a preference, not case data: it is not part of the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, select

from recovery.db import Database
from recovery.models import SavedView

MAX_NAME = 80
MAX_QUERY = 4000
MAX_VIEWS = 50


@dataclass(frozen=True)
class View:
    name: str
    query: str


def _name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("name: give the view a name")
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"name: at most {MAX_NAME} characters")
    return cleaned


def list_views(db: Database, operator: str) -> list[View]:
    """The operator's views, by name."""
    with db.read() as session:
        rows = session.exec(
            select(SavedView).where(SavedView.operator == operator).order_by(col(SavedView.name))
        ).all()
        return [View(row.name, row.query) for row in rows]


def save_view(db: Database, operator: str, name: str, query: str, now: datetime) -> View:
    """Save (or replace) the operator's view of this name; ValueError names what is wrong."""
    name = _name(name)
    if len(query) > MAX_QUERY:
        raise ValueError(f"query: at most {MAX_QUERY} characters")
    with db.write() as session:
        row = session.exec(
            select(SavedView).where(SavedView.operator == operator, SavedView.name == name)
        ).first()
        if row is None:
            count = len(session.exec(select(SavedView.id).where(SavedView.operator == operator)).all())
            if count >= MAX_VIEWS:
                raise ValueError(f"name: at most {MAX_VIEWS} saved views per operator; delete one first")
            row = SavedView(operator=operator, name=name, query=query, created_at=now, updated_at=now)
        else:
            row.query = query
            row.updated_at = now
        session.add(row)
    return View(name, query)


def delete_view(db: Database, operator: str, name: str) -> bool:
    """Delete the operator's view of this name; whether there was one."""
    with db.write() as session:
        result = session.execute(
            delete(SavedView).where(col(SavedView.operator) == operator, col(SavedView.name) == name)
        )
        return bool(getattr(result, "rowcount", 0))
