"""The wiring of facts to reactions (billing/reactions.py), printed and checked, and the
registry's promise: a reaction runs after the commit that stated its fact, never inside it."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import is_dataclass

import pytest
from django.db import transaction

import billing
from billing import reactions as wiring
from billing.events import emit_after_commit, react, reactions
from billing.ledger.events import BalanceAlertsDue, MoneyCredited, RechargeMayBeDue
from billing.payments.events import CardSetupCompleted, OfflineChargeSucceeded
from billing.top_ups.events import (
    CurrencyWithdrawn,
    MoneyGivenBack,
    MoneyTakenBack,
    TopUpCredited,
)

# Who reacts to what, and whether a failing reaction fails the request that stated the fact.
WIRING = {
    RechargeMayBeDue: [("billing.reactions", "recharge", True)],
    CurrencyWithdrawn: [("billing.reactions", "switch_off_auto_recharges", True)],
    CardSetupCompleted: [("billing.reactions", "save_card", False)],
    OfflineChargeSucceeded: [("billing.offline", "deliver_payment_intent_succeeded", False)],
    TopUpCredited: [("billing.reactions", "send_top_up_receipt", True)],
    MoneyTakenBack: [("billing.reactions", "send_refund_or_dispute_receipt", True)],
    MoneyGivenBack: [("billing.reactions", "send_refund_or_dispute_receipt", True)],
    MoneyCredited: [
        ("billing.reactions", "pay_unpaid_fees", True),
        ("billing.reactions", "collect_owed_usage", True),
    ],
    BalanceAlertsDue: [("billing.reactions", "check_balance_alerts", True)],
}


def _table() -> dict[type, list[tuple[str, str, bool]]]:
    return {
        event: [(h.__module__, h.__name__, robust) for h, robust in handlers]
        for event, handlers in reactions().items()
    }


def test_the_wiring_of_facts_to_reactions() -> None:
    table = _table()
    for event, handlers in sorted(table.items(), key=lambda item: item[0].__name__):
        for module, name, robust in handlers:
            print(
                f"{event.__name__:24} -> {module}.{name} ({'robust' if robust else 'not robust'})"
            )
    assert table == WIRING


def test_every_fact_an_area_states_has_a_reaction() -> None:
    """A fact nobody reacts to is a reaction forgotten: each dataclass in an area's events
    module is wired."""
    facts = set()
    for info in pkgutil.walk_packages(billing.__path__, "billing."):
        if info.name.endswith(".events") and info.name != "billing.events":
            module = importlib.import_module(info.name)
            facts |= {
                value
                for value in vars(module).values()
                if isinstance(value, type)
                and is_dataclass(value)
                and value.__module__ == module.__name__
            }
    assert facts == set(WIRING)


class _Seen:
    pass


@pytest.fixture
def seen() -> list[_Seen]:
    calls: list[_Seen] = []
    react(_Seen, calls.append, robust=False)
    yield calls
    wiring.register()  # the real wiring again, without the test's reaction


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reaction_runs_after_the_commit_and_not_after_a_rollback(seen) -> None:
    fact = _Seen()
    with transaction.atomic():
        emit_after_commit(fact)
        assert seen == []  # not inside the transaction that stated it
    assert seen == [fact]

    with pytest.raises(RuntimeError), transaction.atomic():
        emit_after_commit(_Seen())
        raise RuntimeError("rolled back")
    assert seen == [fact]

    emit_after_commit(fact)  # outside a transaction: at once
    assert seen == [fact, fact]
