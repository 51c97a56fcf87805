"""A separate process that applies ledger operations, for the concurrency tests.

    python -m tests.billing.ledger.ledger_worker OPS_JSON RESULT_JSON START_AT

Runs with DATABASE_URL pointing at the test database; waits until START_AT (epoch seconds) so
that all workers begin together, then applies each operation through the service layer.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter


def main() -> None:
    ops_path, result_path, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()  # the models may be imported only now
    from billing.exceptions import InsufficientFunds, TransactionConflict
    from billing.ledger.entries import Actor
    from billing.ledger.services import wallet_credit, wallet_debit
    from billing.models import BillingAccount
    from billing.money import Money

    with open(ops_path) as f:
        job = json.load(f)
    account = BillingAccount.objects.get(pk=job["account_id"])
    outcomes: Counter[str] = Counter()
    time.sleep(max(0.0, start_at - time.time()))
    for op, transaction_id, nanos in job["ops"]:
        service = wallet_credit if op == "credit" else wallet_debit
        try:
            result = service(
                account=account,
                money=Money(nanos, "USD"),
                transaction_id=transaction_id,
                actor=Actor.system(),
            )
            outcomes["replayed" if result.replayed else "applied"] += 1
        except TransactionConflict:
            outcomes["conflict"] += 1
        except InsufficientFunds:
            outcomes["insufficient"] += 1
    with open(result_path, "w") as f:
        json.dump(outcomes, f)


if __name__ == "__main__":
    main()
