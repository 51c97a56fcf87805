"""The developer endpoints of seed 004: monetizationConfig and the prepaid balance."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router
from ninja.errors import AuthenticationError

from accounts.models import ApiToken, User
from accounts.services import api_token_authenticate, token_user_has_perm
from billing.api.auth import BearerOnly, read_with_token
from billing.api.errors import JSON, ApiError
from billing.api.schemas import (
    ERRORS,
    AdjustRequest,
    BalanceOut,
    CreditRequest,
    ErrorOut,
    MonetizationConfig,
    wallets_out,
)
from billing.billing_accounts.selectors import (
    billing_type_effective,
    developer_account_by_email,
    developer_account_from_row,
    developer_account_read,
)
from billing.billing_accounts.services import billing_account_get_or_create
from billing.billing_type.services import billing_type_set
from billing.ledger.entries import Actor, LedgerResult
from billing.ledger.selectors import WalletBalance, wallets_balance
from billing.ledger.services import (
    transaction_id_refuse_reserved,
    wallet_adjust,
    wallet_credit,
    wallet_debit,
)
from billing.models import BillingAccount, BillingType, BillingTypeChange
from billing.money import Money, money_from_apigee

router = Router()
DEBIT = "billing.debit_any_prepaid_balance"
DEVELOPER = "/organizations/{org}/developers/{email}"


def developer_account(
    request: HttpRequest,
    org: str,
    email: str,
    permission: str,
    *,
    own: bool = False,
    read: Callable[[str], BillingAccount | None] = developer_account_by_email,
) -> BillingAccount:
    """The developer's billing account, after checking the organisation and the token's rights.

    Rights are checked before existence, so a token without them learns nothing about who exists.
    """
    if org != settings.PORTAL_ORG:
        raise ApiError(404, f"Organization {org!r} not found.")
    if not email.isprintable() or len(email) > 254:
        # No stored address looks like this; PostgreSQL would refuse a NUL byte outright.
        raise ApiError(404, "Developer not found: that is not an email address.")
    token: ApiToken = request.auth  # type: ignore[attr-defined]
    caller = token.user
    # Emails are stored in lower case (User.save): one exact match, the same in Python and SQL.
    # (The database's case-insensitive match folds more letters than str.lower(), e.g. "ſ".)
    email = email.lower()
    if not (own and caller.email == email) and not token_user_has_perm(token, permission):
        raise ApiError(403, f"This token's user lacks the permission {permission!r}.")
    account = read(email)
    if account is not None:
        return account
    developer = User.objects.filter(email=email, is_staff=False, is_active=True).first()
    if developer is None:
        raise ApiError(404, f"Developer {email!r} not found in organization {org!r}.")
    return billing_account_get_or_create(user=developer)


def _token_actor(request: HttpRequest) -> Actor:
    return Actor.for_token(request.auth)  # type: ignore[attr-defined]


def _balance(account: BillingAccount, result: LedgerResult | None = None) -> dict[str, Any]:
    # After a change, the wallets as they stood right after its entry, both in the first answer
    # and in a replay: read "now", a debit landing between the change and the read made the
    # first answer differ from every replay of it.
    if result is not None and result.as_of is not None and result.as_of.sole_wallet:
        # The ledger's statement read them: the account's one wallet, as of the change.
        balance = Money(result.entry.balance_after, result.as_of.currency)
        return {"wallets": wallets_out([WalletBalance(balance, result.as_of.last_credit_at)])}
    as_of = result.entry if result is not None else None
    return {"wallets": wallets_out(wallets_balance(account=account, as_of=as_of))}


def _developer_account_with_token(
    request: HttpRequest, org: str, email: str, permission: str
) -> BillingAccount:
    """`developer_account`, for an operation whose auth passed the bearer token on unread
    (BearerOnly): the token, its right and the developer's account in one round trip."""
    raw: str = request.auth  # type: ignore[attr-defined]
    if email.isprintable() and len(email) <= 254:
        token, values = read_with_token(
            raw, permission=permission, sql=developer_account_read(), params=[email.lower()]
        )
        found = developer_account_from_row(values)
    else:  # developer_account refuses it, after the token is known to be good
        token, found = api_token_authenticate(raw, permission=permission), None
    if token is None:
        raise AuthenticationError
    request.auth = token  # type: ignore[attr-defined]
    return developer_account(request, org, email, permission, read=lambda _email: found)


def _answer(account: BillingAccount, result: LedgerResult) -> HttpResponse:
    """The balance after a ledger change; a replay says so in a header. Built here to
    BalanceOut's shape, so not validated again (balance:debit is a gateway's call)."""
    answer = HttpResponse(json.dumps(_balance(account, result)), content_type=JSON)
    if result.replayed:
        answer["Idempotent-Replayed"] = "true"
    return answer


@router.get(
    f"{DEVELOPER}/monetizationConfig",
    response={200: MonetizationConfig, **ERRORS},
    operation_id="billing_api_get_monetization_config",
)
def get_monetization_config(request: HttpRequest, org: str, email: str) -> dict[str, str]:
    account = developer_account(request, org, email, "billing.view_any_prepaid_balance", own=True)
    return {"billingType": billing_type_effective(account=account)}


@router.put(
    f"{DEVELOPER}/monetizationConfig",
    response={200: MonetizationConfig, **ERRORS},
    operation_id="billing_api_update_monetization_config",
)
def update_monetization_config(
    request: HttpRequest, org: str, email: str, body: MonetizationConfig
) -> dict[str, str]:
    # The parameter is `body` as elsewhere: error messages leave that word out of a field's path.
    account = developer_account(request, org, email, "billing.update_any_billing_type")
    if body.billingType not in BillingType.values:
        raise ApiError(400, "billingType must be PREPAID or POSTPAID.")
    billing_type_set(
        account=account,
        billing_type=body.billingType,
        changed_by=request.auth.user,  # type: ignore[attr-defined]
        source=BillingTypeChange.Source.API,
    )
    return {"billingType": body.billingType}


@router.get(
    f"{DEVELOPER}/balance",
    response={200: BalanceOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_get_balance",
)
def get_balance(request: HttpRequest, org: str, email: str) -> dict[str, Any]:
    account = developer_account(request, org, email, "billing.view_any_prepaid_balance", own=True)
    return _balance(account)


@router.post(
    f"{DEVELOPER}/balance:credit",
    response={200: BalanceOut, 409: ErrorOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_credit_balance",
)
def credit_balance(request: HttpRequest, org: str, email: str, body: CreditRequest) -> HttpResponse:
    account = developer_account(request, org, email, "billing.adjust_any_prepaid_balance")
    money = money_from_apigee(body.transactionAmount.model_dump(), "transactionAmount")
    transaction_id_refuse_reserved(body.transactionId)
    result = wallet_credit(
        account=account,
        money=money,
        transaction_id=body.transactionId,
        actor=_token_actor(request),
        memo="Credit through the API",
    )
    return _answer(account, result)


@router.post(
    f"{DEVELOPER}/balance:debit",
    response={200: BalanceOut, 409: ErrorOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_debit_balance",
    # A gateway's call too: the token, its right and the developer are read in one statement.
    auth=BearerOnly(permission=DEBIT),
)
def debit_balance(request: HttpRequest, org: str, email: str, body: CreditRequest) -> HttpResponse:
    """Charge usage; a prepaid wallet without enough funds answers 400 FAILED_PRECONDITION."""
    account = _developer_account_with_token(request, org, email, DEBIT)
    money = money_from_apigee(body.transactionAmount.model_dump(), "transactionAmount")
    transaction_id_refuse_reserved(body.transactionId)
    result = wallet_debit(
        account=account,
        money=money,
        transaction_id=body.transactionId,
        actor=_token_actor(request),
        memo="Usage charged through the API",
    )
    return _answer(account, result)


@router.post(
    f"{DEVELOPER}/balance:adjust",
    response={200: BalanceOut, 409: ErrorOut, **ERRORS},
    exclude_none=True,
    operation_id="billing_api_adjust_balance",
)
def adjust_balance(request: HttpRequest, org: str, email: str, body: AdjustRequest) -> HttpResponse:
    """Seed 004's sign rule: a positive adjustment decreases the balance (under-charged),
    a negative one increases it (over-charged)."""
    account = developer_account(request, org, email, "billing.adjust_any_prepaid_balance")
    adjustment = money_from_apigee(body.adjustment.model_dump(), "adjustment")
    result = wallet_adjust(
        account=account,
        change=-adjustment,
        actor=_token_actor(request),
        reason="Adjustment through the API",
        transaction_id=body.transactionId,
    )
    return _answer(account, result)
