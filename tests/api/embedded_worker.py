"""Concurrent API requests against the embedded default, a SQLite file, the way `make run`
serves them: one process, one thread per request.

    DATABASE_URL=sqlite:///…/db.sqlite3 python -m tests.api.embedded_worker THREADS ROUNDS

Migrates the file, makes a portal admin's token and one developer, sends every thread's
requests at once and prints the status codes counted as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections import Counter


def main() -> None:
    threads, rounds = int(sys.argv[1]), int(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.services import api_token_create
    from tests.factories import AdminFactory, DeveloperFactory

    call_command("migrate", verbosity=0)
    _, token = api_token_create(user=AdminFactory(portal_admin=True), name="embedded")
    base = f"/v1/organizations/demo-org/developers/{DeveloperFactory().email}"
    connection.close()
    statuses: Counter[int] = Counter()
    start = threading.Barrier(threads)

    def requests(n: int) -> None:
        client = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {token}"})
        start.wait()
        for i in range(rounds):
            billing_type = ("PREPAID", "POSTPAID")[(n + i) % 2]
            answers = [
                client.put(
                    f"{base}/monetizationConfig",
                    {"billingType": billing_type},
                    content_type="application/json",
                ),
                client.post(
                    f"{base}/balance:credit",
                    {
                        "transactionAmount": {"currencyCode": "USD", "units": "1"},
                        "transactionId": str(uuid.uuid4()),
                    },
                    content_type="application/json",
                ),
            ]
            statuses.update(answer.status_code for answer in answers)
        connection.close()

    workers = [threading.Thread(target=requests, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps(statuses))


if __name__ == "__main__":
    main()
