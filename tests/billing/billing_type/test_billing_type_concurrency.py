"""Two admins confirm different billing types for one developer at the same moment, on
PostgreSQL: exactly one change lands, the other is told to look again."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

import billing.billing_type.services as services
from billing.billing_type.services import billing_type_set, organization_default_billing_type_set
from billing.exceptions import BillingTypeConflict, InsufficientFunds
from billing.ledger.entries import Actor
from billing.ledger.services import wallet_debit
from billing.models import BillingAccount, BillingTypeChange, Wallet
from billing.money import Money
from tests.factories import AdminFactory, DeveloperFactory


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_confirmations_one_wins(postgres):
    developer = DeveloperFactory()
    admins = [AdminFactory(portal_admin=True) for _ in range(8)]
    barrier = threading.Barrier(len(admins))
    outcomes: list[str] = []

    def confirm(admin, billing_type: str) -> None:
        try:
            barrier.wait()
            billing_type_set(
                account=developer.billing_account,
                billing_type=billing_type,
                changed_by=admin,
                source=BillingTypeChange.Source.ADMIN,
                expected_current="",
            )
            outcomes.append("saved")
        except BillingTypeConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=confirm, args=(admin, "PREPAID" if i % 2 else "POSTPAID"))
        for i, admin in enumerate(admins)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 7 + ["saved"]
    account = BillingAccount.objects.get(pk=developer.billing_account.pk)
    changes = list(BillingTypeChange.objects.filter(billing_account=account))
    # Only a change to Prepaid alters the effective type (the default is Postpaid).
    assert len(changes) == (1 if account.billing_type == "PREPAID" else 0)
    assert account.billing_type in {"PREPAID", "POSTPAID"}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("switch", ["developer", "organisation default"])
def test_a_debit_during_a_switch_to_prepaid_is_judged_as_prepaid(postgres, monkeypatch, switch):
    """Postpaid with -100 USD; a debit of 50 arrives while the switch to Prepaid settles the
    wallet. Prepaid starts from zero with no grace, so the debit must be refused, not land as a
    postpaid debit after the wallet was reset (which left the prepaid wallet at -50)."""

    account = DeveloperFactory().billing_account  # follows the default, Postpaid
    usd = lambda units: Money(units * 10**9, "USD")  # noqa: E731
    wallet_debit(account=account, money=usd(100), transaction_id="u1", actor=Actor.system())
    outcome: list[str] = []

    def debit_meanwhile() -> None:
        try:
            wallet_debit(account=account, money=usd(50), transaction_id="u2", actor=Actor.system())
            outcome.append("debited")
        except InsufficientFunds:
            outcome.append("refused")
        finally:
            connection.close()

    real_ledger_apply = services.ledger_apply
    debit = threading.Thread(target=debit_meanwhile)

    def ledger_apply_then_let_a_debit_in(**kwargs):
        # Not a stand-in: the real ledger_apply runs; this only starts a rival debit while the
        # switch's transaction is still open, and gives it time to reach the database.
        result = real_ledger_apply(**kwargs)
        debit.start()
        time.sleep(0.5)
        return result

    monkeypatch.setattr(services, "ledger_apply", ledger_apply_then_let_a_debit_in)
    if switch == "developer":
        billing_type_set(
            account=account,
            billing_type="PREPAID",
            changed_by=None,
            source=BillingTypeChange.Source.ADMIN,
        )
    else:
        organization_default_billing_type_set(billing_type="PREPAID", changed_by=None)
    debit.join(timeout=30)

    assert outcome == ["refused"]
    assert Wallet.objects.get(billing_account=account).balance == 0
