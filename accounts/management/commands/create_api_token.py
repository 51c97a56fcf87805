from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken, User
from accounts.services import api_token_create


class Command(BaseCommand):
    help = "Create a bearer token for the REST API; it acts with that user's permissions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="API token", help="What the token is for.")

    def handle(self, *args: Any, email: str, name: str, **options: Any) -> None:
        limit = ApiToken._meta.get_field("name").max_length or 0
        if not name.strip() or len(name) > limit:
            raise CommandError(f"--name must be 1 to {limit} characters, not {len(name)}.")
        user = User.objects.filter(email=email.lower()).first()
        if user is None:
            raise CommandError(f"No user with the email {email!r}.")
        if not user.is_active:
            raise CommandError(f"{email} is inactive: a token for it would not work.")
        token, raw = api_token_create(user=user, name=name)
        self.stderr.write(
            f"Token {token.prefix}… “{token.name}” for {user.email}. "
            "It is shown once and only its hash is kept:"
        )
        self.stdout.write(raw)
