"""Endpoint specs: secrets stay hidden."""
from __future__ import annotations

from transforms.dynamo.endpoints import Credentials


def test_credentials_never_show_their_secrets():
    creds = Credentials("AKIDSECRETID", "very-secret-value", "session-secret")
    assert "very-secret-value" not in repr(creds) and "AKIDSECRETID" not in repr(creds)
    assert "session-secret" not in str(creds)
