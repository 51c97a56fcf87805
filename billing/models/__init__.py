"""billing's models, one module per area; every name is re-exported here, so `billing.models`
stays the one import path (and migration 0016 still finds `_recharge_idempotency_key`)."""

from __future__ import annotations

from billing.models.audit import AuditLogEntry
from billing.models.auto_recharge import AutoRecharge, RechargeAttempt, _recharge_idempotency_key
from billing.models.billing_accounts import (
    BillingAccount,
    BillingType,
    BillingTypeChange,
    OrganizationSettings,
)
from billing.models.catalog import ApiProduct, RatePlan
from billing.models.developer_apps import AppKey, DeveloperApp
from billing.models.expiry import CreditLot
from billing.models.ledger import LedgerEntry, Wallet
from billing.models.notifications import BalanceAlert, SentNotification
from billing.models.stripe_events import StripeEvent
from billing.models.subscriptions import Subscription
from billing.models.top_ups import TopUp, TopUpLimit, TrustTier
from billing.models.usage import UsageCounter, UsageEvent

__all__ = [
    "ApiProduct",
    "AppKey",
    "DeveloperApp",
    "UsageCounter",
    "UsageEvent",
    "RatePlan",
    "Subscription",
    "AuditLogEntry",
    "AutoRecharge",
    "BillingAccount",
    "BillingType",
    "BillingTypeChange",
    "CreditLot",
    "LedgerEntry",
    "OrganizationSettings",
    "RechargeAttempt",
    "BalanceAlert",
    "SentNotification",
    "StripeEvent",
    "TopUp",
    "TopUpLimit",
    "TrustTier",
    "Wallet",
    "_recharge_idempotency_key",
]
