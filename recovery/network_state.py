"""Each network's live state as the system sees it, for the appeal form (``GET /v1/networks``).

``unavailable``: the last checks could not reach a node of the network. ``delayed``: deposits on it
wait for the chain longer than usual (confirmations slow to come, or a backlog of cases waiting for
the chain). ``ok`` otherwise. Each comes with a short sentence the form can show before the user
files ("BSC deposits are delayed, your appeal will be checked as soon as the network answers").

Where it comes from (nothing new is stored: the re-check and the API's synchronous check already
record it):

- **Events.** Every chain check that changes a case appends a ``chain_result`` audit event: with
  ``{"outcome": "chain_unavailable", "unavailable": {network: problem}}`` when a node could not be
  reached (``recovery.services.CaseService._chain_result``), with ``{"outcome": "decided",
  "network": where it was found}`` when the chains answered. The events of the last
  :attr:`NetworkStatePolicy.window` (15 minutes) are read; for each network the **latest** of them
  that speaks about it wins: an ``unavailable`` naming it says "down at that time", a decision found
  on it (or, for a transaction found nowhere, on the network the user named) says "answered".
- **Cases still waiting.** A check that changes nothing appends no event, and ``recovery recheck``
  leaves a case it could not decide untouched apart from its bookkeeping (``last_checked_at``,
  ``check_count``: no event, so the audit log does not grow with every run). So the cases in
  ``submitted`` or ``awaiting_chain`` that were never classified (no check of them ever had an
  answer) and were checked within the window are also evidence of "down at their last check", for
  the networks their last ``chain_unavailable`` event named, else for the network the user named.
  Without this, a network that stays down while no new appeal comes would fall out of the window.
- **Backlog.** Cases in ``awaiting_chain`` waiting for the chain (``awaiting_confirmations``, or not
  decided yet; ``tx_not_found`` is left out: that hash may simply be wrong), opened within
  :attr:`NetworkStatePolicy.backlog_horizon` (24 hours: a transaction stuck for days is its own
  problem, not the network's), on the network the deposit landed on (else the one named):
  ``delayed`` when at least
  :attr:`NetworkStatePolicy.delayed_min_cases` of them are older than
  :attr:`NetworkStatePolicy.delayed_after`, or :attr:`NetworkStatePolicy.backlog_cases` wait at all.

Cost. The audit log has no index on its time (and gets none here: no migration), but its ids follow
the order of appending, and every event's time is the writer's clock at that moment: the first event
of the window is found by a binary search over the primary key (about 20 point reads for a million
events, one read when the newest event is older than the window), then the window's
``chain_result`` events are a primary-key range. The waiting cases come through
``ix_cases_status_created``. :class:`NetworkStates` computes it at most every
:attr:`NetworkStatePolicy.refresh` (30 s) per process, on the service's clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import Session

from recovery.config import Config
from recovery.db import Database
from recovery.i18n import DEFAULT_LANGUAGE, translator
from recovery.models import Case, CaseEvent
from recovery.user_text import NETWORK_STATES
from recovery.vocabulary import CaseStatus, Category

State = Literal["ok", "delayed", "unavailable"]
OK: State = "ok"
DELAYED: State = "delayed"
UNAVAILABLE: State = "unavailable"


@dataclass(frozen=True)
class NetworkStatePolicy:
    """The thresholds (proposed policy keys in brackets; the defaults live here until they exist)."""

    #: how far back the checks count [network_state_window_minutes]
    window: timedelta = timedelta(minutes=15)
    #: how long one computation is served [network_state_refresh_seconds]
    refresh: timedelta = timedelta(seconds=30)
    #: a case waiting for the chain this long is late [network_delayed_after_minutes]
    delayed_after: timedelta = timedelta(minutes=60)
    #: this many late cases make the network ``delayed`` [network_delayed_min_cases]
    delayed_min_cases: int = 3
    #: this many cases waiting for the chain, of any age, make it ``delayed`` [network_backlog_cases]
    backlog_cases: int = 50
    #: only cases opened this recently count for ``delayed``: one stuck for days (a transaction that
    #: never confirms) is that transfer's problem, not the network's [network_backlog_horizon_hours]
    backlog_horizon: timedelta = timedelta(hours=24)
    #: at most this many still-waiting cases are read as evidence of a network down (the most recently checked)
    stuck_cases_read: int = 200


DEFAULT_POLICY = NetworkStatePolicy()

#: how the sentences name the shipped networks (any other network: its configured name)
NETWORK_LABELS: Mapping[str, str] = {
    "ethereum": "Ethereum", "bsc": "BSC", "polygon": "Polygon", "arbitrum": "Arbitrum", "tron": "TRON",
    "xrpl": "XRP Ledger", "stellar": "Stellar", "solana": "Solana", "bitcoin": "Bitcoin", "cosmoshub": "Cosmos Hub",
}

#: the sentence of each state (English; translated in ``recovery/locales``)
MESSAGES: Mapping[State, str] = {state: NETWORK_STATES[state] for state in (OK, DELAYED, UNAVAILABLE)}


@dataclass(frozen=True)
class NetworkState:
    network: str
    state: State
    message: str
    #: how many cases wait for this network's chain, and how many of them are late
    waiting: int = 0
    late: int = 0
    #: when the evidence that decided ``unavailable`` was seen (None otherwise)
    unavailable_since: datetime | None = None


def label(network: str) -> str:
    return NETWORK_LABELS.get(network, network)


def message(network: str, state: State, language: str = DEFAULT_LANGUAGE) -> str:
    """The state's sentence for the form, in ``language`` (``recovery.i18n.LANGUAGES``)."""
    return translator(language).text(MESSAGES[state], network=label(network))


_EVENTS = CaseEvent.__table__  # type: ignore[attr-defined]
#: the statuses of cases that wait for the chain (and are read through ``ix_cases_status_created``)
_WAITING_STATUSES = (CaseStatus.SUBMITTED.value, CaseStatus.AWAITING_CHAIN.value)
_CASES = Case.__table__  # type: ignore[attr-defined]


def first_event_since(session: Session, since: datetime) -> int | None:
    """The id of the first audit event written at or after ``since`` (None: none), by a binary search
    over the primary key (event ids follow the order of appending, and so their times)."""
    connection = session.connection()
    # two statements: SQLite answers min() or max() alone from the key's ends, both together by a scan
    high = connection.execute(core_select(func.max(_EVENTS.c.id))).scalar()
    if high is None:
        return None
    low = int(connection.execute(core_select(func.min(_EVENTS.c.id))).scalar_one())

    def at_or_after(event_id: int) -> tuple[int, datetime]:
        row = connection.execute(
            core_select(_EVENTS.c.id, _EVENTS.c.created_at).where(_EVENTS.c.id >= event_id)
            .order_by(_EVENTS.c.id).limit(1)
        ).one()
        return int(row.id), row.created_at

    if at_or_after(high)[1] < since:
        return None
    while low < high:  # the smallest id whose first event at or after it is in the window
        middle = (low + high) // 2
        if at_or_after(middle)[1] >= since:
            high = middle
        else:
            low = middle + 1
    return at_or_after(low)[0]


@dataclass
class _Seen:
    """The latest evidence about one network: when, and whether it answered."""

    at: datetime
    answered: bool


def _note(seen: dict[str, _Seen], network: str, at: datetime, answered: bool) -> None:
    known = seen.get(network)
    # the later evidence wins; at the same moment "could not reach" wins (the form warns rather than not)
    if known is None or at > known.at or (at == known.at and not answered):
        seen[network] = _Seen(at, answered)


def _unavailable_of(details: Any) -> Iterable[str]:
    if isinstance(details, Mapping) and details.get("outcome") == "chain_unavailable":
        unavailable = details.get("unavailable")
        if isinstance(unavailable, Mapping):
            return [str(name) for name in unavailable]
    return ()


def _answered_of(details: Any, claimed: str) -> Iterable[str]:
    if isinstance(details, Mapping) and details.get("outcome") == "decided":
        found = details.get("network")
        return [str(found)] if isinstance(found, str) and found else [claimed]
    return ()


def read_states(session: Session, config: Config, now: datetime,
                policy: NetworkStatePolicy = DEFAULT_POLICY) -> dict[str, NetworkState]:
    """Every configured network's state at ``now`` (see the module's docstring)."""
    since = now - policy.window
    seen: dict[str, _Seen] = {}
    connection = session.connection()
    first = first_event_since(session, since)
    if first is not None:
        for at, details, claimed in connection.execute(
            core_select(_EVENTS.c.created_at, _EVENTS.c.details, _CASES.c.network)
            .join(_CASES, _CASES.c.id == _EVENTS.c.case_id)
            .where(_EVENTS.c.id >= first, _EVENTS.c.action == "chain_result", _EVENTS.c.created_at >= since)
        ):
            for network in _unavailable_of(details):
                _note(seen, network, at, False)
            for network in _answered_of(details, claimed):
                _note(seen, network, at, True)

    waiting: dict[str, int] = {}
    late: dict[str, int] = {}
    stuck: list[tuple[int, str, datetime]] = []
    late_before = now - policy.delayed_after
    recent_after = now - policy.backlog_horizon
    for case_id, status, network, landed, category, created_at, checked_at in connection.execute(
        core_select(_CASES.c.id, _CASES.c.status, _CASES.c.network, _CASES.c.deposit_network, _CASES.c.category,
                    _CASES.c.created_at, _CASES.c.last_checked_at)
        .where(_CASES.c.status.in_(_WAITING_STATUSES))
    ):
        undecided = category is None  # never classified: no check of it has had an answer yet
        if undecided and checked_at is not None and checked_at >= since:
            stuck.append((int(case_id), str(network), checked_at))
        if status != CaseStatus.AWAITING_CHAIN.value:
            continue
        if not undecided and category != Category.AWAITING_CONFIRMATIONS.value:
            continue  # not found (yet): the hash may be wrong, that says nothing about the network
        if created_at < recent_after:
            continue
        where = landed or network
        waiting[where] = waiting.get(where, 0) + 1
        if created_at <= late_before:
            late[where] = late.get(where, 0) + 1
    stuck.sort(key=lambda item: item[2], reverse=True)
    stuck = stuck[:policy.stuck_cases_read]
    if stuck:
        # the networks the case's last chain_unavailable event named (the API's check records one);
        # a case without one (the re-check leaves an inconclusive case untouched): the network named
        named: dict[int, list[str]] = {}
        for case_id, details in connection.execute(
            core_select(_EVENTS.c.case_id, _EVENTS.c.details)
            .where(_EVENTS.c.case_id.in_([case_id for case_id, _, _ in stuck]), _EVENTS.c.action == "chain_result")
            .order_by(_EVENTS.c.id)
        ):
            down = list(_unavailable_of(details))
            if down:
                named[int(case_id)] = down
        for case_id, network, checked_at in stuck:
            for name in named.get(case_id, [network]):
                _note(seen, name, checked_at, False)

    states: dict[str, NetworkState] = {}
    for name in config.networks:
        evidence = seen.get(name)
        state: State
        if evidence is not None and not evidence.answered:
            state = UNAVAILABLE
        elif late.get(name, 0) >= policy.delayed_min_cases or waiting.get(name, 0) >= policy.backlog_cases:
            state = DELAYED
        else:
            state = OK
        states[name] = NetworkState(name, state, message(name, state), waiting.get(name, 0), late.get(name, 0),
                                    evidence.at if state == UNAVAILABLE and evidence is not None else None)
    return states


class NetworkStates:
    """The states, computed at most every ``policy.refresh`` on the service's clock (one process; the
    threads of the API share it). A computation that fails (the database is down) is not cached."""

    def __init__(self, db: Database, config: Config, clock: Callable[[], datetime],
                 policy: NetworkStatePolicy = DEFAULT_POLICY) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.policy = policy
        self._lock = threading.Lock()
        self._computed_at: datetime | None = None
        self._states: dict[str, NetworkState] = {}

    def get(self) -> dict[str, NetworkState]:
        with self._lock:
            now = self.clock()
            fresh = self._computed_at is not None and timedelta(0) <= now - self._computed_at < self.policy.refresh
            if not fresh:
                with self.db.read() as session:
                    self._states = read_states(session, self.config, now, self.policy)
                self._computed_at = now
            return self._states

    def max_age_seconds(self) -> int:
        """How long a client may keep the answer: what is left of the current computation's life."""
        if self._computed_at is None:
            return 0
        left = self.policy.refresh - (self.clock() - self._computed_at)
        return max(0, min(int(self.policy.refresh.total_seconds()), int(left.total_seconds())))
