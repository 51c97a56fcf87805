"""Logging filters for the portal's settings."""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """A 403 or 404 is the portal answering as designed, not a bug: Django logs each with the
    exception's traceback, which buried real errors under pages of noise in `make run`. Keep
    the one line; 5xx keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
