"""Credentials: secret hashing, tokens, headers, refusal messages, and no secret in a repr."""

from __future__ import annotations

import hashlib

import pytest

from bridge.errors import ConfigError
from bridge.nightscout.auth import Credentials, JWTGrant, parse_jwt_grant, sha1_hex

SECRET = "correct-horse-battery"  # >= 12 characters, as Nightscout requires
SECRET_SHA1 = hashlib.sha1(SECRET.encode()).hexdigest()
TOKEN = "uploader-ac8bd1a2a95a35e3"


def test_plain_secret_is_sent_as_its_sha1() -> None:
    creds = Credentials.from_secret(SECRET)
    assert creds.kind == "secret"
    assert creds.headers() == {"api-secret": SECRET_SHA1}
    assert sha1_hex(SECRET) == SECRET_SHA1
    assert not creds.short_secret


def test_secret_file_newline_is_dropped() -> None:
    assert Credentials.from_secret(SECRET + "\n").headers() == {"api-secret": SECRET_SHA1}
    assert Credentials.from_secret(SECRET + "\r\n").headers() == {"api-secret": SECRET_SHA1}


def test_40_hex_sha1_is_sent_as_given_lowercased() -> None:
    creds = Credentials.from_secret(SECRET_SHA1.upper())
    assert creds.kind == "hashed-secret"
    assert creds.headers() == {"api-secret": SECRET_SHA1}


def test_39_hex_is_a_plain_secret() -> None:
    value = SECRET_SHA1[:39]
    assert Credentials.from_secret(value).headers() == {"api-secret": sha1_hex(value)}


def test_short_plain_secret_is_flagged_for_the_hint() -> None:
    creds = Credentials.from_secret("short")
    assert creds.short_secret
    _, hint = creds.refusal(401, permission="api:entries:create")
    assert "12" in hint


def test_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Credentials.from_secret("\n")


def test_token_in_api_secret_header() -> None:
    creds = Credentials.from_token(TOKEN)
    assert creds.is_token and not creds.bearer
    assert creds.headers() == {"api-secret": TOKEN}


def test_token_as_bearer_jwt() -> None:
    creds = Credentials.from_token(TOKEN, bearer=True)
    assert creds.headers("eyJ.abc.def") == {"Authorization": "Bearer eyJ.abc.def"}
    assert creds.jwt_request_path() == f"/api/v2/authorization/request/{TOKEN}"
    with pytest.raises(ValueError):
        creds.headers()


@pytest.mark.parametrize("bad", ["", "  ", "a b", "tok/../en", "tok?en=1", "tok@host"])
def test_bad_tokens_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Credentials.from_token(bad)
    assert not bad.strip() or bad not in str(info.value)


def test_secret_cannot_be_exchanged_for_jwt() -> None:
    with pytest.raises(ValueError):
        Credentials.from_secret(SECRET).jwt_request_path()


@pytest.mark.parametrize(
    "creds",
    [Credentials.from_secret(SECRET), Credentials.from_secret(SECRET_SHA1), Credentials.from_token(TOKEN),
     Credentials.from_token(TOKEN, bearer=True)],
    ids=["plain", "hashed", "token", "bearer"],
)
def test_repr_and_str_never_show_the_secret(creds: Credentials) -> None:
    for text in (repr(creds), str(creds), f"{creds}"):
        assert SECRET not in text and SECRET_SHA1 not in text and TOKEN not in text
    message, hint = creds.refusal(401, permission="api:entries:create")
    for text in (message, hint):
        assert SECRET not in text and SECRET_SHA1 not in text and TOKEN not in text
    assert creds.redact(f"x {creds.header_value} y") == "x *** y"


def test_refusal_of_a_plain_secret_names_the_hashed_secret_and_api_secret() -> None:
    message, hint = Credentials.from_secret(SECRET).refusal(401, permission="api:entries:create")
    assert "SHA-1 of the configured secret" in message and "401" in message
    assert "API_SECRET" in hint


def test_refusal_of_a_hashed_secret_says_it_was_sent_as_given() -> None:
    message, hint = Credentials.from_secret(SECRET_SHA1).refusal(401, permission="api:entries:create")
    assert "hashed API secret" in message
    assert "SHA-1 of the site's API_SECRET" in hint


@pytest.mark.parametrize("bearer", [False, True])
def test_refusal_of_a_token_names_the_missing_permission(bearer: bool) -> None:
    message, hint = Credentials.from_token(TOKEN, bearer=bearer).refusal(403, permission="api:entries:create")
    assert "api:entries:create" in message and "403" in message
    assert "no default" in hint and "admin" in hint
    assert ("Bearer" in message) is bearer


def test_parse_jwt_grant() -> None:
    grant = parse_jwt_grant({"token": "eyJ.x.y", "sub": "uploader", "iat": 1, "exp": 28801})
    assert grant == JWTGrant("eyJ.x.y", 28801.0)
    assert "eyJ" not in repr(grant)
    assert parse_jwt_grant({"token": "t"}).expires_at == 0.0
    for bad in ({}, {"token": ""}, [], "x", {"token": 5}):
        with pytest.raises(ValueError):
            parse_jwt_grant(bad)
