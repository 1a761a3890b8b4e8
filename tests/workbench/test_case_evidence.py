"""The case page's ownership evidence: what the credit needs, a withdrawal record shown inline with
Accept / Reject, the approval refused without it and by the person who accepted it; the queue's
"evidence waiting" filter. The deposit is real: USDT sent on anvil from a key generated here to an
exchange wallet, appealed by a user (an unattributed deposit)."""

from __future__ import annotations

from io import BytesIO

from eth_account import Account
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.demo.chainworld import impersonate
from app.workbench.context import Workbench
from recovery.checking import ChainGateway
from recovery.evidence import EvidenceService
from recovery.intake import validate_appeal
from recovery.models import DepositAddress
from recovery.recheck import Recheck, RecheckOptions
from recovery.services import Actor
from recovery.vocabulary import Role
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.test_evidence import PNG
from tests.workbench.conftest import signed_in_app
from tests.workbench.seed import HOSTILE

CASE = "views/case.py"
QUEUE = "views/queue.py"
USDT = 10**6


def png() -> bytes:
    """A real (tiny) PNG image, made with Pillow."""
    buffer = BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def unattributed(wb: Workbench, testbed: EvmTestbed) -> str:
    account = Account.create()
    hot = fresh_address()
    with wb.db.write() as session:
        session.add(DepositAddress(user_id="", network="ethereum", address=hot, kind="wallet"))
    testbed.send_native("ethereum", account.address, 10**18)
    testbed.send_token("ethereum", "USDT", account.address, 30 * USDT)
    impersonate(testbed.url("ethereum"), account.address)
    tx = testbed.send_token("ethereum", "USDT", hot, 30 * USDT, sender=account.address)
    testbed.mine("ethereum", 12)
    raw = {"network": "ethereum", "asset": "USDT", "tx_hash": tx, "deposit_address": hot}
    case, _ = wb.cases.submit(validate_appeal(wb.config, raw, "ursula"), Actor("ursula", Role.USER))
    gateway = ChainGateway(wb.config, adapters={n: testbed.adapter(n) for n in ("ethereum", "bsc")})
    Recheck(wb.cases, gateway, RecheckOptions()).run()
    assert wb.cases.get(case.reference or "").case.category == "unattributed_deposit"
    return case.reference or ""


def open_case(username: str, reference: str) -> AppTest:
    at = signed_in_app(username)  # the queue forgets the last case opened: set it, then open the page
    at.session_state["wb_case_ref"] = reference
    at.switch_page(CASE).run()
    assert not at.exception, at.exception
    return at


def approve_on_page(at: AppTest) -> None:
    """Approve, then confirm it in the dialog the page opens for money-moving actions."""
    at.button(key="submit_approve").click().run()
    assert not at.exception, at.exception
    at.button(key="confirm_approve").click().run()


def test_a_record_is_shown_accepted_and_the_acceptor_cannot_approve(wb: Workbench, evm_testbed: EvmTestbed) -> None:
    reference = unattributed(wb, evm_testbed)
    evidence = EvidenceService(wb.db, wb.config, wb.cases.clock)
    at = open_case("sara", reference)
    assert "Ownership evidence" in [s.value for s in at.subheader]
    assert any("Approval is refused until then" in str(w.value) for w in at.warning)
    # approving now is refused by the service, naming the missing evidence
    approve_on_page(at)
    assert not at.exception, at.exception
    assert any("ownership not proven" in str(t.value) for t in at.text)
    assert wb.cases.get(reference).case.status == "in_review"
    record = evidence.submit_document(reference, "ursula", Role.USER, content=png(), declared_type="image/png",
                                      file_name=HOSTILE)
    at = open_case("sara", reference)
    assert [getattr(i, "captions", None) for i in at.get("image")] == [[f"Evidence {record.id}"]]  # inline
    assert any(HOSTILE in str(t.value) for t in at.text)  # the user's file name as plain text
    at.button(key=f"ev_accept_{record.id}").click().run()
    assert not at.exception, at.exception
    [row] = evidence.evidence(reference)[2]
    assert (row.status, row.reviewer) == ("accepted", "sara")
    at = open_case("sara", reference)
    approve_on_page(at)
    assert any("accepted the ownership evidence" in str(t.value) for t in at.text)
    assert wb.cases.get(reference).case.status == "in_review"  # sara accepted it: someone else approves
    at = open_case("tom", reference)
    approve_on_page(at)
    assert not at.exception, at.exception
    assert wb.cases.get(reference).case.status == "approved"


def test_a_record_is_rejected_with_a_reason_and_the_queue_filters_evidence_waiting(
    wb: Workbench, evm_testbed: EvmTestbed
) -> None:
    reference = unattributed(wb, evm_testbed)
    evidence = EvidenceService(wb.db, wb.config, wb.cases.clock)
    # the right magic bytes but no image: shown as a file, never drawn (the page does not break)
    record = evidence.submit_document(reference, "ursula", Role.USER, content=PNG, declared_type="image/png")
    at = open_case("tom", reference)
    assert any("cannot be decoded" in str(w.value) for w in at.warning)
    queue = signed_in_app("sara", QUEUE)
    assert not queue.exception, queue.exception
    queue.toggle(key="q_evidence_waiting").set_value(True).run()
    assert not queue.exception, queue.exception
    [table] = [d for d in queue.dataframe if d.key == "q_evidence_table"] if any(
        d.key == "q_evidence_table" for d in queue.dataframe) else [queue.dataframe[0]]
    assert list(table.value["reference"]) == [reference]
    at = open_case("tom", reference)
    at.button(key=f"ev_reject_{record.id}").click().run()  # no reason: refused, naming the field
    assert any("reason: is required" in str(t.value) for t in at.text)
    assert evidence.evidence(reference)[2][0].status == "submitted"
    at = open_case("tom", reference)
    at.text_input(key=f"ev_reason_{record.id}").set_value("the record names another transaction")
    at.button(key=f"ev_reject_{record.id}").click().run()
    assert not at.exception, at.exception
    [row] = evidence.evidence(reference)[2]
    assert (row.status, row.reviewer, row.reason) == ("rejected", "tom", "the record names another transaction")
    assert evidence.waiting_references() == []


def huge_png() -> bytes:
    """A real PNG that declares 20,000 x 20,000 pixels (400 megapixels) in a few hundred kilobytes."""
    buffer = BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_bomb_is_never_drawn_and_the_page_stays_whole(wb: Workbench, evm_testbed: EvmTestbed) -> None:
    reference = unattributed(wb, evm_testbed)
    evidence = EvidenceService(wb.db, wb.config, wb.cases.clock)
    content = huge_png()
    assert len(content) < 1024 * 1024
    record = evidence.submit_document(reference, "ursula", Role.USER, content=content, declared_type="image/png")
    at = open_case("tom", reference)
    assert at.get("image") == []
    assert any("too large to show" in str(w.value) for w in at.warning)
    assert f"ev_accept_{record.id}" in [b.key for b in at.button]  # the review still works
