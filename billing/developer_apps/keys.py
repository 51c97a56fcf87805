"""API keys: random, shown once, stored only as a SHA-256 hash and found by it in one read."""

from __future__ import annotations

import hashlib
import secrets

KEY_BYTES = 32  # 256 bits of randomness
PREFIX_LENGTH = 12  # shown on pages and used in paths; far too short to guess the key from


def key_new() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_prefix(raw: str) -> str:
    return raw[:PREFIX_LENGTH]
