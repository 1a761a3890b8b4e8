"""The JSON shapes of the API (request and responses), for validation and the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recovery.vocabulary import CaseStatus, Category, Recoverable, Resolution

DateTimeText = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="UTC, ISO 8601")]
DecimalText = Annotated[str, Field(description="exact decimal as a string", examples=["12.5"])]
UserFlag = Literal["amount_mismatch", "partial_payment", "expired", "not_economical"]

#: the decimal form accepted for ``amount`` (plain digits, optional fraction; no sign or exponent)
AMOUNT_PATTERN = r"^[0-9]{1,40}(\.[0-9]{1,36})?$"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssetInfo(_Out):
    symbol: str
    name: str | None
    contract: str | None = Field(description="token contract (null for the native coin)")
    decimals: int
    min_deposit: DecimalText
    deposits_enabled: bool


class NetworkInfo(_Out):
    name: str = Field(description="the value to send as `network`")
    family: str
    native_asset: str
    deposits_enabled: bool
    memo_required: bool = Field(description="deposits are told apart by memo / tag on this network")
    memo_format: Literal["none", "digits", "uint32", "uint64", "text"]
    memo_hint: str
    memo_pattern: str | None
    address_hint: str
    address_pattern: str
    tx_hash_hint: str
    tx_hash_pattern: str
    explorer_tx_url: str
    assets: list[AssetInfo]
    state: Literal["ok", "delayed", "unavailable"] = Field(
        description="the network as the system sees it now: `ok`; `delayed` (confirmations slower than usual, or "
                    "a backlog of appeals waiting for the chain); `unavailable` (the last checks could not reach "
                    "a node). Appeals may be filed in every state: they are checked as soon as the network answers. "
                    "Recomputed at most every 30 s.")
    state_message: str = Field(
        description="one sentence for the user about `state`, to show on the form before they file",
        examples=["BSC deposits are delayed, your appeal will be checked as soon as the network answers."])


class NetworksOut(_Out):
    networks: list[NetworkInfo]
    asset_hint: str


class FeeBreakdownOut(_Out):
    amount: DecimalText | None = Field(description="the amount the fee is computed on")
    price_usd: DecimalText | None
    value_usd: DecimalText | None
    flat_usd: DecimalText | None
    percent: DecimalText | None = Field(description="fraction: 0.05 is 5%")
    free_below_usd: DecimalText | None
    percent_term_usd: DecimalText | None
    min_usd: DecimalText | None
    max_usd: DecimalText | None
    fee_usd: DecimalText | None
    fee_value_usd: DecimalText | None
    net: DecimalText | None
    min_value_usd: DecimalText | None
    max_age_days: int | None
    capped: bool | None
    below_min_value: bool | None


class FeeOut(_Out):
    amount: DecimalText | None = Field(description="fee in the asset; null when it needs a manual valuation")
    asset: str | None
    usd: DecimalText | None = Field(description="the fee's value in US dollars, to the cent", examples=["20.00"])
    breakdown: FeeBreakdownOut


class ReasonOut(_Out):
    code: str = Field(description="the reason's stable code (for machines)")
    text: str = Field(description="the reason in one sentence written for the user, in the answer's language")
    evidence: dict[str, Any]


class TimelineEntry(_Out):
    at: DateTimeText
    event: Literal[
        "submitted", "detected", "checked", "awaiting_chain", "information_requested", "information_provided",
        "approved", "rejected", "refund_sent", "refunded", "refund_failed", "credited", "closed", "withdrawn",
        "reopened", "information_reminder", "fee_set",
    ] = Field(description="`detected`: the exchange found the deposit and opened the case (origin `detected`); "
                          "`fee_set`: the team valued an asset without a price, which set the fee")
    status: CaseStatus | None
    message: str | None
    category: Category | None
    reason_code: str | None
    refund_tx_hash: str | None


class AttachmentOut(_Out):
    file_name: str | None
    media_type: Literal["application/pdf", "image/png", "image/jpeg"]
    size: int
    sha256: str


class OpenQuestionOut(_Out):
    message: str = Field(description="the appeal team's question, as they wrote it")
    asked_at: DateTimeText
    reminder_at: DateTimeText | None = Field(description="when we remind you if there is no answer yet")
    closes_at: DateTimeText | None = Field(
        description="when the appeal is closed if there is no answer; an answer within the grace period reopens it")


class ConversationEntryOut(_Out):
    at: DateTimeText
    by: Literal["team", "you"]
    kind: Literal["question", "reminder", "answer", "closed_unanswered"]
    message: str
    attachments: list[AttachmentOut]


class FeedbackIn(BaseModel):
    """The user's rating of a finished appeal (once per appeal)."""

    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=1, le=5, description="1 (very unhappy) to 5 (very happy)")
    comment: str | None = Field(default=None, max_length=2000, description="optional, in the user's own words")


class FeedbackOut(_Out):
    reference: str = Field(examples=["RC-000042"])
    score: int = Field(ge=1, le=5)
    comment: str | None
    given_at: DateTimeText


class ReplyIn(BaseModel):
    """An answer as JSON (attachments need multipart/form-data: a ``message`` field and ``files``)."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4000)


class AmountsDisplayOut(_Out):
    """The appeal's amounts as the user reads them, formatted for the answer's language (the
    machine fields beside them stay exact decimal strings)."""

    claimed_amount: str | None = Field(examples=["2,275.09 USDT"])
    amount: str | None = Field(examples=["2,275.09 USDT"])
    fee: str | None = Field(examples=["108.75 USDT"])
    fee_usd: str | None = Field(examples=["$108.75"])
    net_amount: str | None = Field(examples=["2,166.34 USDT"])


class RatingOut(_Out):
    score: int = Field(ge=1, le=5)
    given_at: DateTimeText


class AppealOut(_Out):
    reference: str = Field(examples=["RC-000042"])
    status: CaseStatus
    status_label: str = Field(description="the status in a few words for the user", examples=["Being reviewed"])
    next_step: str = Field(description="what happens next, in one sentence, with a date where there is one")
    language: Literal["en", "es", "vi"] = Field(
        description="the language of the sentences (chosen by `Accept-Language`; also `Content-Language`)")
    origin: Literal["appeal", "detected"] = Field(
        description="`appeal`: filed by the user; `detected`: the exchange found the stray deposit on chain "
                    "and opened the case itself (an appeal for the same transfer returns this case)"
    )
    network: str = Field(description="the network the user says they sent on")
    asset: str
    tx_hash: str
    deposit_address: str
    memo: str | None
    claimed_amount: DecimalText | None
    found_on_network: str | None = Field(description="where the transaction was found (null until found)")
    amount: DecimalText | None = Field(description="the amount that arrived, as found on chain")
    category: Category | None
    recoverable: Recoverable | None
    resolution: Resolution | None
    flags: list[UserFlag]
    fee: FeeOut | None = Field(description="the fee quote; null until the transaction is classified")
    net_amount: DecimalText | None
    display: AmountsDisplayOut
    reasons: list[ReasonOut]
    refund_tx_hash: str | None
    refund_network: str | None
    explorer_url: str | None
    timeline: list[TimelineEntry]
    open_question: OpenQuestionOut | None = Field(
        description="the question the appeal team is waiting for you to answer (POST …/replies), or, for an "
                    "appeal closed unanswered, the question an answer to which reopens it until `closes_at`")
    conversation: list[ConversationEntryOut] = Field(
        description="the team's questions and reminders and your answers, oldest first")
    feedback: RatingOut | None = Field(description="your rating of the finished appeal (null until given)")
    can_rate: bool = Field(description="whether `POST …/feedback` would take a rating now (a finished "
                                       "appeal not rated yet)")
    created_at: DateTimeText
    updated_at: DateTimeText


class AppealListOut(_Out):
    appeals: list[AppealOut]
    total: int
    limit: int
    offset: int


class ChallengeOut(_Out):
    message: str = Field(description="sign exactly this text (UTF-8) with the key of the address that sent the deposit")
    expires_at: DateTimeText


class EvidenceOut(_Out):
    id: int
    kind: Literal["signed_message", "withdrawal_record"]
    status: Literal["submitted", "accepted", "rejected"]
    submitted_at: DateTimeText
    reason: str | None = Field(description="why a withdrawal record was rejected")
    counts: bool = Field(description="given for what the appeal needs now: false for proof of a former decision "
                                     "(listed, but it no longer counts: prove again)")


class OwnershipOut(_Out):
    reference: str
    required: bool = Field(description="the credit needs proof that you sent the deposit before it is approved")
    status: Literal["not_required", "missing", "submitted", "accepted", "rejected"]
    kinds: list[Literal["signed_message", "withdrawal_record"]] = Field(
        description="the kinds of evidence offered for this deposit's network and sending address")
    not_offered: str | None = Field(description="why `signed_message` is not offered here, when it is not")
    challenge: ChallengeOut | None = Field(
        description="the single-use message to sign (`signed_message`); a new one after it expires or is used")
    evidence: list[EvidenceOut]


class OwnershipSignedIn(BaseModel):
    """``POST /v1/appeals/{reference}/ownership`` as JSON: a signature over the current challenge."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["signed_message"]
    signature: str = Field(max_length=1024, description="as the wallet gives it (hex, base64 or base58)")
    public_key: str | None = Field(default=None, max_length=1024,
                                   description="required on the XRP Ledger; optional on Stellar and Solana")


class HealthOut(_Out):
    status: Literal["ok"]


class AppealRequest(BaseModel):
    """Body of ``POST /v1/appeals`` (documentation; the handler validates every field itself)."""

    model_config = ConfigDict(extra="forbid")

    network: str = Field(min_length=1, max_length=40, description="where the user sent (see GET /v1/networks)")
    asset: str = Field(
        min_length=1, max_length=128,
        description="a listed symbol, an unlisted token's symbol, or the token's contract address",
    )
    tx_hash: str = Field(min_length=1, max_length=128, description="in the network's own form")
    deposit_address: str = Field(min_length=1, max_length=128, description="the address the user sent to")
    memo: str | None = Field(default=None, max_length=256, description="memo / destination tag, if any")
    amount: str | None = Field(
        default=None, max_length=80, pattern=AMOUNT_PATTERN, description="amount the user sent, a decimal string"
    )


def request_schema() -> dict[str, Any]:
    """The JSON schema of the appeal body (inline: it has no nested models)."""
    schema = AppealRequest.model_json_schema()
    schema["additionalProperties"] = False
    return schema
