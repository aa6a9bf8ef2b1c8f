"""Authentication as Nightscout: secret digests, tokens, roles, 401 body, fail delay."""

from __future__ import annotations

import time

import pytest

from bridge.server.auth import FailureDelay

from .conftest import SECRET, SHA1, SHA512, AppFactory, TestClient, entry

UNAUTHORIZED = {"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}


def token_for(client: TestClient, role: str, name: str = "uploader") -> str:
    """Create an access token directly in the app's database."""
    token: str = client.app.state.ctx.db.create_token(name, role, 0)  # type: ignore[attr-defined]
    return token


@pytest.mark.parametrize("value", [SHA1, SHA1.upper(), SHA512])
def test_auth_secret_digests_are_admin(client: TestClient, value: str) -> None:
    response = client.post("/api/v1/entries", json=[entry()], headers={"api-secret": value})
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["API-SECRET", "Api-Secret", "api-secret"])
def test_auth_header_name_is_case_insensitive(client: TestClient, header: str) -> None:
    assert client.post("/api/v1/entries", json=[], headers={header: SHA1}).status_code == 200


@pytest.mark.parametrize("value", [SECRET, SHA512.upper(), "0" * 40, "", "\u00e9t\u00e9"])
def test_auth_plain_or_wrong_secret_is_refused(make_app: AppFactory, value: str) -> None:
    with TestClient(make_app(auth_fail_delay_s=0)) as client:
        response = client.post("/api/v1/entries", json=[entry()], headers={"api-secret": value.encode()})
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert client.get("/api/v1/entries.json").json() == []


def test_auth_missing_credentials_cannot_write(client: TestClient) -> None:
    response = client.post("/api/v1/entries", json=[entry()])
    assert response.status_code == 401 and response.json() == UNAUTHORIZED
    assert client.post("/api/v1/treatments", json={"eventType": "Note"}).status_code == 401
    assert client.post("/api/v1/devicestatus", json={}).status_code == 401


def test_auth_secret_in_query_and_body(client: TestClient) -> None:
    assert client.post(f"/api/v1/entries?secret={SHA1}", json=[entry(1)]).status_code == 200
    response = client.post("/api/v1/entries", json=[{**entry(2), "secret": SHA1}])
    assert response.status_code == 200 and "secret" not in response.json()[0]


def test_auth_tokens_by_role(client: TestClient) -> None:
    admin, readable, denied = (token_for(client, role, role) for role in ("admin", "readable", "denied"))
    assert admin.startswith("admin-") and len(admin) == len("admin-") + 16
    assert client.post(f"/api/v1/entries?token={admin}", json=[entry()]).status_code == 200
    assert client.post("/api/v1/entries", json=[entry(1)], headers={"api-secret": admin}).status_code == 200
    assert client.post(f"/api/v1/entries?token={readable}", json=[entry(2)]).status_code == 401
    assert client.get(f"/api/v1/entries.json?token={readable}").status_code == 200
    assert client.post("/api/v1/entries", json=[{**entry(3), "token": admin}]).status_code == 200
    # a denied token still has the default role (readable here), as in Nightscout
    assert client.get(f"/api/v1/entries.json?token={denied}").status_code == 200
    assert client.post(f"/api/v1/entries?token={denied}", json=[entry(4)]).status_code == 401


def test_auth_default_role_denied(denied_client: TestClient) -> None:
    client = denied_client
    for path in ("/api/v1/entries.json", "/api/v1/entries/current.json", "/api/v1/devicestatus.json",
                 "/api/v1/treatments.json", "/api/v1/status.json"):
        response = client.get(path)
        assert response.status_code == 401 and response.json() == UNAUTHORIZED, path
    readable = token_for(client, "readable")
    assert client.get(f"/api/v1/entries.json?token={readable}").status_code == 200
    assert client.get("/api/v1/status.json", headers={"api-secret": SHA1}).status_code == 200
    denied = token_for(client, "denied", "nobody")
    assert client.get(f"/api/v1/entries.json?token={denied}").status_code == 401


def test_auth_bad_credentials_fail_even_for_readable_data(make_app: AppFactory) -> None:
    with TestClient(make_app(auth_fail_delay_s=0)) as client:
        assert client.get("/api/v1/entries.json?token=nope-0000000000000000").status_code == 401
        assert client.get("/api/v1/entries.json").status_code == 200


def test_auth_no_secret_configured_only_tokens_write(make_app: AppFactory) -> None:
    with TestClient(make_app(api_secret=None, auth_fail_delay_s=0)) as client:
        assert client.post("/api/v1/entries", json=[entry()], headers={"api-secret": SHA1}).status_code == 401
        admin = token_for(client, "admin")
        assert client.post(f"/api/v1/entries?token={admin}", json=[entry()]).status_code == 200


def test_verifyauth_reports_what_credentials_allow(client: TestClient) -> None:
    anonymous = client.get("/api/v1/verifyauth").json()
    assert anonymous == {"status": 200, "message": {
        "canRead": True, "canWrite": False, "isAdmin": False, "message": "OK",
        "rolefound": "NOTFOUND", "permissions": "DEFAULT"}}
    admin = client.get("/api/v1/verifyauth", headers={"api-secret": SHA1}).json()["message"]
    assert admin["canWrite"] and admin["isAdmin"] and admin["message"] == "OK"
    assert admin["permissions"] == "ROLE"


def test_verifyauth_bad_credentials_still_200(make_app: AppFactory) -> None:
    with TestClient(make_app(auth_fail_delay_s=0)) as client:
        response = client.get("/api/v1/verifyauth", headers={"api-secret": SECRET})
        assert response.status_code == 200
        message = response.json()["message"]
        assert message["message"] == "UNAUTHORIZED" and not message["canRead"]


def test_verifyauth_denied_default_without_credentials(denied_client: TestClient) -> None:
    message = denied_client.get("/api/v1/verifyauth").json()["message"]
    assert message["canRead"] is False and message["message"] == "UNAUTHORIZED"


def test_auth_fail_delay_slows_later_requests_with_credentials(make_app: AppFactory) -> None:
    delay = 0.4
    with TestClient(make_app(auth_fail_delay_s=delay)) as client:
        started = time.monotonic()
        assert client.get("/api/v1/entries.json", headers={"api-secret": "wrong"}).status_code == 401
        assert time.monotonic() - started < delay  # the failing request itself is not delayed
        started = time.monotonic()
        assert client.get("/api/v1/entries.json", headers={"api-secret": SHA1}).status_code == 200
        assert time.monotonic() - started >= delay * 0.9  # a good request from that address waits
        started = time.monotonic()
        assert client.get("/api/v1/entries.json").status_code == 200  # no credentials: no wait
        assert time.monotonic() - started < delay


def test_failure_delay_accumulates_per_address() -> None:
    now = [100.0]
    delay = FailureDelay(5.0, clock=lambda: now[0])
    delay.add_failure("a")
    delay.add_failure("a")
    assert delay.remaining("a") == 10.0
    assert delay.remaining("b") == 0.0
    now[0] += 10.5
    assert delay.remaining("a") == 0.0
    delay.add_failure("a")
    assert delay.remaining("a") == 5.0
