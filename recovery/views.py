"""Plain-JSON shapes of a case for the operator read-outs (CLI, exports). Decimal amounts are strings."""

from __future__ import annotations

from typing import Any

from recovery.dbtypes import jsonable
from recovery.models import Case, CaseEvent


def case_json(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = {
        "reference": case.reference,
        "user_id": case.user_id,
        "origin": case.origin,
        "network": case.network,
        "deposit_network": case.deposit_network,
        "asset": case.asset,
        "tx_hash": case.tx_hash,
        "deposit_address": case.deposit_address,
        "memo": case.memo,
        "claimed_amount": case.claimed_amount,
        "status": case.status,
        "category": case.category,
        "recoverable": case.recoverable,
        "resolution": case.resolution,
        "flags": list(case.flags),
        "amount": case.amount,
        "value_usd": case.value_usd,
        "fee_amount": case.fee_amount,
        "fee_asset": case.fee_asset,
        "fee_usd": case.fee_usd,
        "net_amount": case.net_amount,
        "credited_user_id": case.credited_user_id,
        "refund_network": case.refund_network,
        "refund_address": case.refund_address,
        "refund_tx_hash": case.refund_tx_hash,
        "assignee": case.assignee,
        "decision": case.decision,
        "version": case.version,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "sla_due_at": case.sla_due_at,
    }
    result = jsonable(data)
    assert isinstance(result, dict)
    return result


def event_json(event: CaseEvent) -> dict[str, Any]:
    result = jsonable(
        {
            "id": event.id,
            "actor": event.actor,
            "actor_role": event.actor_role,
            "action": event.action,
            "from_status": event.from_status,
            "to_status": event.to_status,
            "details": event.details,
            "created_at": event.created_at,
            "hash": event.hash,
        }
    )
    assert isinstance(result, dict)
    return result
