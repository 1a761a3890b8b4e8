"""Every sentence a user reads about their appeal, in English, marked for the catalogs.

The rules engine writes its reasons for the appeal team (``recovery/rules.py``: exact, with
addresses and rule names); the user reads these instead, rendered from the reason's code and
evidence in their language (``recovery.i18n``). A reason whose evidence lacks what a sentence
names (a decision stored by an older release) gets the code's general sentence. The raw codes stay
in the API for machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from recovery.i18n import N_, Translator, placeholders

#: each status in a few words a worried user understands
STATUS_LABELS: Mapping[str, str] = {
    "submitted": N_("Received"),
    "awaiting_chain": N_("Waiting for the network"),
    "in_review": N_("Being reviewed"),
    "needs_info": N_("Waiting for your answer"),
    "approved": N_("Approved"),
    "refund_pending": N_("Refund on its way"),
    "refunded": N_("Refunded"),
    "credited": N_("Credited"),
    "rejected": N_("Not recoverable"),
    "closed": N_("Closed"),
}

#: what happens next, one sentence per situation (``{date}`` a day in the user's locale)
NEXT_STEPS: Mapping[str, str] = {
    "submitted": N_("We are looking the transaction up on its network; this usually takes a few minutes."),
    "awaiting_chain": N_("We will check again when the network confirms it, usually within 30 minutes; you do "
                         "not need to do anything."),
    "review_recoverable_by": N_("An approver reviews recoverable deposits: expect a decision by {date}."),
    "review_recoverable": N_("An approver reviews recoverable deposits: expect a decision shortly."),
    "review_by": N_("A specialist reviews your appeal: expect an answer by {date}."),
    "review": N_("A specialist reviews your appeal: expect an answer shortly."),
    "answer_by": N_("Please answer our question below by {date}; without an answer we close the appeal."),
    "answer": N_("Please answer our question below; without an answer we close the appeal."),
    "refund_within": N_("The refund will be sent to the sending address within {hours} hours."),
    "credit_within": N_("The amount will be credited to your account within {hours} hours."),
    "refund_pending": N_("The refund was sent; it completes once the network confirms it."),
    "refunded": N_("Nothing more to do: the refund is confirmed on the network."),
    "credited": N_("Nothing more to do: the amount is in your account."),
    "rejected": N_("Nothing more can be done for this deposit; the reason is below."),
    "reopen_by": N_("Answer our question below by {date} and we will reopen your appeal."),
    "reopen": N_("Answer our question below and we will reopen your appeal."),
    "closed": N_("This appeal is closed."),
}

#: the timeline's sentences, by event (and by the variants of a few)
TIMELINE: Mapping[str, str] = {
    "submitted": N_("Appeal received."),
    "detected": N_("We found this deposit on {network} and opened this case for you: you do not need to file an "
                   "appeal. We check it on chain and the appeal team reviews it; each step and the decision "
                   "appear here."),
    "detected_shared": N_("We found this deposit on {network}: it reached a shared deposit address without a memo "
                          "that identifies an account, so we opened this case to hold it until its sender comes "
                          "forward."),
    "claimed": N_("Appeal received and linked to the case we opened for this deposit; the appeal team will "
                  "confirm that you sent it before crediting it to your account."),
    "checked": N_("The transaction was looked up on chain."),
    "awaiting_chain": N_("The network did not answer in time; it will be checked again automatically."),
    "information_provided": N_("You answered our question."),
    "approved": N_("Your appeal was approved."),
    "refund_sent": N_("The refund was sent; it completes once the transaction is confirmed."),
    "refunded": N_("The refund transaction is confirmed."),
    "refund_failed": N_("The refund transaction failed on chain; it will be sent again."),
    "credited": N_("The amount was credited to the account."),
    "closed": N_("The appeal is closed."),
    "withdrawn": N_("You withdrew the appeal."),
    "reopened": N_("The appeal was reopened for review."),
    "fee_set": N_("The appeal team valued the deposit and set the recovery fee; the amounts below are updated."),
    "reminder": N_("We are still waiting for your answer to our question of {asked}. If we do not hear from you "
                   "by {closes}, we will close your appeal; you can still answer afterwards to reopen it."),
    "closed_unanswered": N_("We closed your appeal because our question was not answered. Answer it by {until} "
                            "and we will reopen your appeal."),
}

#: a network's state on the appeal form (``GET /v1/networks``; ``recovery/network_state.py``)
NETWORK_STATES: Mapping[str, str] = {
    "ok": N_("{network} deposits are checked as usual: your appeal is looked up on the network as soon as you "
             "file it."),
    "delayed": N_("{network} deposits are delayed, your appeal will be checked as soon as the network answers."),
    "unavailable": N_("{network} cannot be reached right now: you can still file your appeal, it will be checked "
                      "as soon as the network answers."),
}

#: one message per rejection reason code (``recovery.services.REJECTION_REASONS`` names the codes)
REJECTIONS: Mapping[str, str] = {
    "not_recoverable": N_("The funds cannot be recovered from where they landed."),
    "not_our_address": N_("The transaction did not reach a deposit address of your account."),
    "ownership_not_proven": N_("We could not confirm that you sent this deposit."),
    "not_economical": N_("Recovering this deposit would cost more than it is worth."),
    "expired": N_("The deposit is older than the period within which we can recover it."),
    "duplicate": N_("This deposit is already handled in another appeal."),
    "counterfeit_token": N_("The token is a counterfeit imitating a listed asset; it has no value."),
    "user_withdrew": N_("You withdrew the appeal."),
    "tx_not_found": N_("We could not find this transaction on the network you named or on the related networks."),
    "tx_failed": N_("The transaction failed on the network: nothing was sent, only the network fee was paid."),
    "already_credited": N_("This deposit was already credited; nothing more is due for it."),
    "no_answer": N_("We closed the appeal because our question was not answered."),
    "other": N_("See the message from the appeal team."),
}

#: the reasons' sentences: ``code`` is the general one, ``code.variant`` a more precise one
REASONS: Mapping[str, str] = {
    "tx_not_found": N_("We could not find this transaction on the network you named."),
    "tx_not_found.where": N_("We could not find this transaction on {networks}. Please check the transaction "
                             "hash and the network you sent it on."),
    "not_checked": N_("We could not reach some networks yet ({networks}); we will check them again."),
    "not_checked.general": N_("We could not reach some networks yet; we will check them again."),
    "found_on_several": N_("This transaction hash exists on several networks: {networks}."),
    "found_on_several.general": N_("This transaction hash exists on several networks."),
    "found_elsewhere": N_("Your transaction is on {network}, not on {claimed_network} as your appeal says."),
    "found_elsewhere.general": N_("Your transaction is on another network than the one your appeal names."),
    "found": N_("We found your transaction on {network}."),
    "found.general": N_("We found your transaction."),
    "replaceable": N_("The sender can still replace this transaction until it is confirmed; nothing is credited "
                      "before then."),
    "awaiting_confirmations": N_("Your transaction has {confirmations} of the {required} confirmations the network "
                                 "requires; we check it again automatically."),
    "awaiting_confirmations.general": N_("Your transaction does not have enough confirmations yet; we check it "
                                         "again automatically."),
    "tx_failed": N_("The transaction failed on the network: nothing was sent, only the network fee was paid."),
    "not_our_address": N_("This transaction sent nothing to a deposit address of your account."),
    "address_claim_differs": N_("Your appeal names the address {claimed_address}, which this transaction did not "
                                "pay."),
    "address_claim_differs.general": N_("Your appeal names another address than the one this transaction paid."),
    "unrecognised_chain_data": N_("Part of the network's answer about this transaction needs a specialist to read "
                                  "it before anything is paid."),
    "transfer": N_("{amount} went from {sender} to {recipient}."),
    "transfer.general": N_("We found the transfer to your deposit address."),
    "other_transfers": N_("The transaction also contains other transfers to our addresses; each needs its own "
                          "appeal."),
    "unlisted_token": N_("This token is not listed on {network}, so it was not credited automatically; it can "
                         "only be returned through a manual recovery."),
    "unlisted_token.general": N_("This token is not listed, so it was not credited automatically; it can only be "
                                 "returned through a manual recovery."),
    "internal_transfer": N_("The coins arrived through a smart-contract call, which our automatic deposit "
                            "system does not see; the appeal team can credit them."),
    "uncredited_valid": N_("Your deposit is correct but was not credited automatically; it will be credited to "
                           "your account with no fee."),
    "unattributed_deposit": N_("Your deposit reached an address of ours that is not any account's deposit "
                               "address; we can credit it once you prove you sent it, otherwise it is returned "
                               "to the sender."),
    "missing_memo": N_("Your deposit reached our shared {network} address without the memo (tag) that "
                       "identifies your account; we can credit it once you prove you sent it."),
    "missing_memo.general": N_("Your deposit reached a shared address without the memo (tag) that identifies "
                               "your account; we can credit it once you prove you sent it."),
    "memo_malformed": N_("The memo {memo} is not a valid memo on {network}, so it identifies no account; we "
                         "can credit the deposit once you prove you sent it."),
    "memo_malformed.general": N_("The memo is not valid on this network, so it identifies no account; we can "
                                 "credit the deposit once you prove you sent it."),
    "wrong_memo": N_("The memo {memo} does not identify your account; we can credit the deposit once you prove "
                     "you sent it."),
    "wrong_memo.general": N_("The memo does not identify your account; we can credit the deposit once you prove "
                             "you sent it."),
    "already_credited": N_("This deposit was already credited ({amount}); nothing more is due for it."),
    "already_credited.general": N_("This deposit was already credited; nothing more is due for it."),
    "counterfeit_token": N_("Warning: this token calls itself {symbol} but is not the real {imitates}. Fake "
                            "look-alike tokens are a known scam: it has no value and cannot be credited."),
    "counterfeit_token.general": N_("Warning: this token imitates a listed asset but is not the real one. Fake "
                                    "look-alike tokens are a known scam: it has no value and cannot be "
                                    "credited."),
    "wrong_network": N_("Your deposit was sent on {network}, but the address was issued for {issued_for}."),
    "wrong_network.contract": N_("Your deposit was sent on {network}, but the address was issued for "
                                 "{issued_for}. That address is a smart contract that exists only where it was "
                                 "deployed, so nobody controls it on {network}: the funds cannot be recovered."),
    "wrong_network.not_offered": N_("Your deposit was sent on {network}, but the address was issued for "
                                    "{issued_for}. We do not offer recovery from {network}."),
    "wrong_network.recoverable": N_("Your deposit was sent on {network}, but the address was issued for "
                                    "{issued_for}. We hold the same key on {network}, so the funds can be "
                                    "recovered."),
    "wrong_network.conditional": N_("Your deposit was sent on {network}, but the address was issued for "
                                    "{issued_for}. We hold the same key on {network}, where recovery is "
                                    "possible under conditions."),
    "wrong_network.general": N_("Your deposit was sent on another network than the one the address was issued "
                                "for."),
    "deposit_suspended": N_("Deposits on {network} are suspended; we credit it once they reopen, or return it."),
    "deposit_suspended.asset": N_("Deposits of {asset} on {network} are suspended; we credit it once they "
                                  "reopen, or return it."),
    "deposit_suspended.general": N_("Deposits on this network are suspended; we credit it once they reopen, or "
                                    "return it."),
    "below_minimum": N_("{amount} is less than the minimum deposit of {minimum}."),
    "below_minimum.general": N_("The amount is less than the minimum deposit."),
    "amount_mismatch": N_("Your appeal says {claimed}, but {amount} arrived; only what arrived counts."),
    "amount_mismatch.general": N_("The amount in your appeal differs from what arrived; only what arrived counts."),
    "partial_payment": N_("Less arrived than the transaction's stated amount (a partial payment); only what "
                          "arrived counts."),
    "asset_claim_differs": N_("Your appeal names {claimed_asset}, but the transfer carried another asset."),
    "asset_claim_differs.general": N_("Your appeal names another asset than the one the transfer carried."),
    "decimals_unknown": N_("We could not read this token's decimals on the network, so the appeal team values "
                           "it by hand."),
    "ownership_proof": N_("Prove that you sent this deposit: sign the message we give you with the key of the "
                          "sending address {sender}, or upload the withdrawal record of the platform you sent it "
                          "from."),
    "ownership_proof.record": N_("Prove that you sent this deposit: upload the withdrawal record of the platform "
                                 "you sent it from (PDF, PNG or JPEG)."),
    "no_price": N_("We have no USD price for this asset, so the appeal team values it by hand before setting "
                   "the fee."),
    "fee": N_("The recovery fee is {fee}; you would receive {net}."),
    "fee.usd": N_("The recovery fee is {fee} ({usd}); you would receive {net}."),
    "fee.none": N_("No fee is charged for this; you would receive {net}."),
    "fee.no_rule": N_("No fee is charged for this."),
    "fee.unset": N_("The recovery fee is set once the appeal team has valued the deposit."),
    "age_unknown": N_("The transaction's time is unknown, so its age could not be checked."),
    "expired": N_("Your deposit is {age_days} days old; this recovery is offered only within {max_age_days} days."),
    "expired.general": N_("Your deposit is older than the period within which this recovery is offered."),
    "not_economical": N_("Its value ({value}) is less than the {minimum} a recovery needs to be worth it."),
    "not_economical.fee": N_("The fee ({fee}) would take the whole amount, so the recovery is not worth it."),
    "not_economical.general": N_("Recovering this deposit would cost more than it is worth."),
    "unknown": N_("See the appeal team's notes on this appeal."),
}


def all_messages() -> Iterator[tuple[str, str]]:
    """(name, English message) of every sentence here, for the catalogs."""
    for table_name, table in (("STATUS_LABELS", STATUS_LABELS), ("NEXT_STEPS", NEXT_STEPS), ("TIMELINE", TIMELINE),
                              ("REJECTIONS", REJECTIONS), ("REASONS", REASONS),
                              ("NETWORK_STATES", NETWORK_STATES)):
        for key, message in table.items():
            yield f"{table_name}[{key}]", message


# ------------------------------------------------------------------------------------- reasons

@dataclass(frozen=True)
class Facts:
    """What the reasons' sentences may name besides their own evidence: the case as decided."""

    network: str | None  #: where the funds are
    claimed_network: str
    unit: str | None  #: the asset's symbol (or token id) the amounts are in
    decimals: int | None
    category: str | None
    recoverable: str | None
    fee_amount: Decimal | None
    fee_unit: str | None
    fee_usd: Decimal | None
    net_amount: Decimal | None


def decimal_or_none(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            parsed = Decimal(value)
        except (InvalidOperation, ValueError):
            return None
        return parsed if parsed.is_finite() else None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


class _Reason:
    """One reason being rendered: its evidence, the case's facts and the language."""

    def __init__(self, code: str, evidence: Mapping[str, Any], facts: Facts, tr: Translator) -> None:
        self.code, self.evidence, self.facts, self.tr = code, evidence, facts, tr

    def say(self, variant: str | None = None, **params: Any) -> str:
        """The variant's sentence; where one of its values is missing, the code's general sentence."""
        key = f"{self.code}.{variant}" if variant else self.code
        if key in REASONS and all(value is not None for value in params.values()):
            return self.tr.text(REASONS[key], **params)
        for fallback in (f"{self.code}.general", self.code):
            if fallback in REASONS and not placeholders(REASONS[fallback]):
                return self.tr.text(REASONS[fallback])
        return self.tr.text(REASONS["unknown"])

    def amount(self, key: str) -> str | None:
        value = decimal_or_none(self.evidence.get(key))
        return self.tr.amount(value, self.facts.decimals, self.facts.unit) if value is not None else None

    def usd(self, key: str) -> str | None:
        value = decimal_or_none(self.evidence.get(key))
        return self.tr.usd(value) if value is not None else None

    def network(self, key: str = "network") -> str | None:
        return _text(self.evidence.get(key)) or self.facts.network


def _networks(r: _Reason, key: str) -> str:
    listed = _texts(r.evidence.get(key))
    return r.say("where" if r.code == "tx_not_found" else None, networks=r.tr.items(listed) if listed else None)


def _wrong_network(r: _Reason) -> str:
    issued = _texts(r.evidence.get("issued_for"))
    params = {"network": _text(r.evidence.get("landed_on")) or r.facts.network,
              "issued_for": r.tr.items(issued) if issued else None}
    if r.evidence.get("kind") == "contract":
        return r.say("contract", **params)
    if r.evidence.get("recovery") == "none":
        return r.say("not_offered", **params)
    if r.facts.category == "wrong_network" and r.facts.recoverable == "yes":
        return r.say("recoverable", **params)
    if r.facts.category == "wrong_network" and r.facts.recoverable == "conditional":
        return r.say("conditional", **params)
    return r.say(None, **params)


def _fee(r: _Reason) -> str:
    facts, tr = r.facts, r.tr
    if "rule" in r.evidence and r.evidence.get("rule") is None:
        return r.say("no_rule")
    fee = facts.fee_amount if facts.fee_amount is not None else decimal_or_none(r.evidence.get("fee"))
    net = facts.net_amount if facts.net_amount is not None else decimal_or_none(r.evidence.get("net"))
    if fee is None or net is None:
        return r.say("unset")
    net_text = tr.amount(net, facts.decimals, facts.unit)
    if fee == 0:
        return r.say("none", net=net_text)
    fee_text = tr.amount(fee, facts.decimals if facts.fee_unit in (None, facts.unit) else None,
                         facts.fee_unit or facts.unit)
    usd = facts.fee_usd if facts.fee_usd is not None else decimal_or_none(r.evidence.get("fee_usd"))
    if usd is None:
        return r.say(None, fee=fee_text, net=net_text)
    return r.say("usd", fee=fee_text, usd=tr.usd(usd), net=net_text)


def _not_economical(r: _Reason) -> str:
    value, minimum = decimal_or_none(r.evidence.get("value_usd")), decimal_or_none(r.evidence.get("min_value_usd"))
    if value is not None and minimum is not None and minimum > 0 and value < minimum:
        return r.say(None, value=r.tr.usd(value), minimum=r.tr.usd(minimum))
    fee = r.usd("fee_usd")
    return r.say("fee", fee=fee) if fee is not None else r.say("general")


def _deposit_suspended(r: _Reason) -> str:
    asset = _text(r.evidence.get("asset"))
    if asset is not None:
        return r.say("asset", asset=asset, network=r.network())
    return r.say(None, network=r.network())


def _ownership_proof(r: _Reason) -> str:
    kinds = r.evidence.get("kinds")
    sender = _text(r.evidence.get("sender"))
    if isinstance(kinds, list) and "signed_message" in kinds and sender is not None:
        return r.say(None, sender=sender)
    return r.say("record")


def _counterfeit(r: _Reason) -> str:
    symbol = _text(r.evidence.get("token_symbol")) or _text(r.evidence.get("token_name"))
    return r.say(None, symbol=symbol, imitates=_text(r.evidence.get("imitates")))


_RENDER: Mapping[str, Callable[[_Reason], str]] = {
    "tx_not_found": lambda r: _networks(r, "networks_checked"),
    "not_checked": lambda r: _networks(r, "networks_not_checked"),
    "found_on_several": lambda r: _networks(r, "networks"),
    "found_elsewhere": lambda r: r.say(None, network=r.network(),
                                       claimed_network=_text(r.evidence.get("claimed_network"))),
    "found": lambda r: r.say(None, network=r.network()),
    "awaiting_confirmations": lambda r: r.say(
        None, confirmations=r.evidence.get("confirmations") if isinstance(r.evidence.get("confirmations"), int)
        else None, required=r.evidence.get("required") if isinstance(r.evidence.get("required"), int) else None),
    "address_claim_differs": lambda r: r.say(None, claimed_address=_text(r.evidence.get("claimed_address"))),
    "transfer": lambda r: r.say(None, amount=r.amount("amount"), sender=_text(r.evidence.get("sender")),
                                recipient=_text(r.evidence.get("recipient"))),
    "unlisted_token": lambda r: r.say(None, network=r.network()),
    "missing_memo": lambda r: r.say(None, network=r.network()),
    "memo_malformed": lambda r: r.say(None, memo=_text(r.evidence.get("memo")), network=r.network()),
    "wrong_memo": lambda r: r.say(None, memo=_text(r.evidence.get("memo"))),
    "already_credited": lambda r: r.say(None, amount=r.amount("credited_amount")),
    "counterfeit_token": _counterfeit,
    "wrong_network": _wrong_network,
    "deposit_suspended": _deposit_suspended,
    "below_minimum": lambda r: r.say(None, amount=r.amount("amount"), minimum=r.amount("min_deposit")),
    "amount_mismatch": lambda r: r.say(None, claimed=r.amount("claimed_amount"), amount=r.amount("arrived_amount")),
    "asset_claim_differs": lambda r: r.say(None, claimed_asset=_text(r.evidence.get("claimed_asset"))),
    "ownership_proof": _ownership_proof,
    "fee": _fee,
    "expired": lambda r: r.say(
        None, age_days=r.evidence.get("age_days") if isinstance(r.evidence.get("age_days"), int) else None,
        max_age_days=r.evidence.get("max_age_days") if isinstance(r.evidence.get("max_age_days"), int) else None),
    "not_economical": _not_economical,
}


def reason_text(code: str, evidence: Mapping[str, Any], facts: Facts, tr: Translator) -> str:
    """The user's sentence for a reason of the rules engine, in the translator's language."""
    render = _RENDER.get(code)
    if render is not None:
        return render(_Reason(code, evidence, facts, tr))
    if code in REASONS:
        return tr.text(REASONS[code])
    return tr.text(REASONS["unknown"])


def day(tr: Translator, moment: datetime | None) -> str | None:
    return tr.day(moment) if moment is not None else None


def codes_with_sentences() -> Sequence[str]:
    """The reason codes these sentences cover (their general form or their variants)."""
    return sorted({key.split(".")[0] for key in REASONS if key != "unknown"})
