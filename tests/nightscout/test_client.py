"""NightscoutClient against a fake Nightscout (httpx.MockTransport) and pytest-httpx.

No network, no real sleeping: ``sleep`` is a recorder and the clock is fixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bridge.errors import ConfigError, UploadError, UploadRejectedError, UploadUnavailableError
from bridge.nightscout.auth import Credentials
from bridge.nightscout.client import NightscoutClient
from bridge.nightscout.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy, parse_retry_after

SECRET = "correct-horse-battery"
SECRET_SHA1 = hashlib.sha1(SECRET.encode()).hexdigest()
TOKEN = "uploader-ac8bd1a2a95a35e3"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1cGxvYWRlciJ9.c2lnbmF0dXJl"
BASE = "https://ns.example.org"
NOW = 1_700_000_000.0  # the fixed clock
PASS = object()  # a script item: answer this request normally


def entry(i: int) -> dict[str, Any]:
    when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * i)
    return {"type": "sgv", "sgv": 100 + i % 50, "direction": "Flat", "trend": 4, "noise": 1,
            "date": int(when.timestamp()) * 1000,
            "dateString": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "device": "dexcom-bridge://SM1"}


class FakeNightscout:
    """Just enough Nightscout v1: api-secret/token/JWT auth, upserting entries, a body limit."""

    def __init__(self, *, max_docs: int | None = None, accept: set[str] | None = None) -> None:
        self.max_docs = max_docs
        self.accept = accept if accept is not None else {SECRET_SHA1}
        self.jwts = {JWT}
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.treatments: list[dict[str, Any]] = []
        self.devicestatus: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.post_sizes: list[int] = []
        self.script: list[Any] = []  # answers, exceptions, handlers or PASS, one per request

    def authorised(self, request: httpx.Request) -> bool:
        if request.headers.get("api-secret", "").lower() in self.accept:
            return True
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.jwts

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script and (item := self.script.pop(0)) is not PASS:
            if isinstance(item, Exception):
                raise item
            return item(request) if callable(item) else item
        path = request.url.path.removeprefix("/ns")  # a site served under a path prefix
        if path.startswith("/api/v2/authorization/request/"):
            if path.rsplit("/", 1)[1] == TOKEN:
                return httpx.Response(200, json={"token": JWT, "sub": "uploader", "iat": NOW, "exp": NOW + 8 * 3600})
            return httpx.Response(401, json={"status": 401, "message": "Unauthorized"})
        if path == "/api/v1/verifyauth":
            ok = self.authorised(request)
            return httpx.Response(200, json={"status": 200, "message": {
                "canRead": True, "canWrite": ok, "isAdmin": ok, "message": "OK" if ok else "UNAUTHORIZED",
                "rolefound": "FOUND" if ok else "NOTFOUND", "permissions": "ROLE" if ok else "DEFAULT"}})
        if not self.authorised(request):
            return httpx.Response(401, json={"status": 401, "message": "Unauthorized",
                                             "description": "Invalid/Missing"})
        if request.method == "GET" and path == "/api/v1/entries.json":
            q = request.url.params
            lo, hi = int(q["find[date][$gte]"]), int(q["find[date][$lte]"])
            docs = sorted((d for d in self.entries.values()
                           if lo <= d["date"] <= hi and d["device"] == q["find[device]"]),
                          key=lambda d: -d["date"])
            return httpx.Response(200, json=docs[: int(q["count"])])
        if request.method != "POST":
            return httpx.Response(404, text="Not found")
        if request.headers.get("content-type") != "application/json":
            return httpx.Response(200, json=[])  # Nightscout ignores a body of another type
        body = json.loads(request.content)
        self.post_sizes.append(len(body))
        if self.max_docs is not None and len(body) > self.max_docs:
            return httpx.Response(413, text="PayloadTooLargeError: request entity too large")
        if path == "/api/v1/entries.json":
            out = []
            for doc in body:
                key = (doc["dateString"], doc["type"])
                new = key not in self.entries
                self.entries[key] = dict(doc, _id=f"{len(self.entries):024x}") if new else self.entries[key]
                out.append(dict(doc, _id=self.entries[key]["_id"]) if new else doc)
            return httpx.Response(200, json=out)
        if path == "/api/v1/treatments.json":
            self.treatments.extend(body)
            return httpx.Response(200, json=[dict(d, _id="t") for d in body])
        if path == "/api/v1/devicestatus.json":
            self.devicestatus.extend(body)
            return httpx.Response(200, json=[dict(d, _id="d" * 24) for d in body])
        return httpx.Response(404, text="Not found")


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server() -> FakeNightscout:
    return FakeNightscout()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(server: FakeNightscout, sleeps: Sleeps | None = None, *, base: str = BASE,
                credentials: Credentials | None = None, **kwargs: Any) -> NightscoutClient:
    http = httpx.Client(transport=httpx.MockTransport(server))
    return NightscoutClient(base, credentials or Credentials.from_secret(SECRET), http=http,
                            sleep=sleeps if sleeps is not None else Sleeps(), clock=lambda: NOW, **kwargs)


def fail(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, text="busy")


# --- requests --------------------------------------------------------------------------------

def test_post_entries_sends_a_json_array_with_the_sha1_header(server: FakeNightscout) -> None:
    client = make_client(server)
    stored = client.post_entries([entry(0), entry(1)])
    assert [d["sgv"] for d in stored] == [100, 101] and all("_id" in d for d in stored)
    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == "https://ns.example.org/api/v1/entries.json"
    assert request.headers["api-secret"] == SECRET_SHA1
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert json.loads(request.content) == [entry(0), entry(1)]
    assert client.requests_made == 1


def test_batches_of_batch_size(server: FakeNightscout) -> None:
    client = make_client(server)
    client.post_entries([entry(i) for i in range(250)])
    assert server.post_sizes == [100, 100, 50]
    assert len(server.entries) == 250 and client.requests_made == 3


def test_413_halves_the_batch_and_delivers_every_document_once(server: FakeNightscout) -> None:
    server.max_docs = 25
    client = make_client(server)
    docs = [entry(i) for i in range(100)]
    stored = client.post_entries(docs)
    assert server.post_sizes == [100, 50, 25, 25, 25, 25]
    assert len(stored) == 100 and [d["date"] for d in stored] == [d["date"] for d in docs]
    assert sorted(d["date"] for d in server.entries.values()) == sorted(d["date"] for d in docs)
    assert all("_id" in d for d in stored)  # every one stored new, i.e. exactly once
    assert client.batch_size == 25
    client.post_entries([entry(i) for i in range(100, 150)])
    assert server.post_sizes[6:] == [25, 25]  # the smaller size is kept


def test_413_for_a_single_document_is_rejected(server: FakeNightscout) -> None:
    server.max_docs = 0
    client = make_client(server, batch_size=4)
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0), entry(1), entry(2)])
    assert server.post_sizes == [3, 1]
    assert info.value.status == 413 and info.value.delivered == 0
    assert "too large" in str(info.value)


def test_treatments_and_devicestatus(server: FakeNightscout) -> None:
    client = make_client(server)
    treatment = {"eventType": "Carb Correction", "carbs": 10, "created_at": "2024-01-01T00:00:00.000Z",
                 "enteredBy": "dexcom-bridge://SM1"}
    assert client.post_treatments([treatment])[0]["carbs"] == 10
    status = {"device": "dexcom-bridge://SM1", "created_at": "2024-01-01T00:00:00.000Z",
              "uploader": {"battery": 80, "name": "Dexcom G4 SM1"}, "bridge": {"backlog": 0}}
    stored = client.post_devicestatus(status)
    assert stored["uploader"]["battery"] == 80 and stored["_id"]
    assert [r.url.path for r in server.requests] == ["/api/v1/treatments.json", "/api/v1/devicestatus.json"]
    assert json.loads(server.requests[1].content) == [status]


def test_on_batch_reports_each_acknowledged_batch_and_errors_say_how_many_were_delivered(
    server: FakeNightscout, sleeps: Sleeps
) -> None:
    client = make_client(server, sleeps, batch_size=10, retry=NO_RETRY)
    seen: list[int] = []
    server.script = [PASS, PASS, fail(500)]  # third batch fails
    with pytest.raises(UploadUnavailableError) as info:
        client.post_entries([entry(i) for i in range(30)], on_batch=lambda sent, stored: seen.append(len(sent)))
    assert seen == [10, 10]
    assert info.value.delivered == 20
    assert len(server.entries) == 20


def test_empty_post_sends_nothing(server: FakeNightscout) -> None:
    client = make_client(server)
    assert client.post_entries([]) == []
    assert client.requests_made == 0


# --- retries ---------------------------------------------------------------------------------

HTTP_DATE = format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("failure", "wait"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), None),
        (httpx.ConnectTimeout("timed out"), None),
        (httpx.ReadTimeout("timed out"), None),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), None),
        (fail(408), None),
        (fail(429, {"Retry-After": "7"}), 7.0),
        (fail(429), None),
        (fail(500), None),
        (fail(502), None),
        (fail(503, {"Retry-After": HTTP_DATE}), 12.0),
        (fail(504), None),
    ],
    ids=["connect-error", "connect-timeout", "read-timeout", "disconnect", "408", "429-retry-after", "429",
         "500", "502", "503-http-date", "504"],
)
def test_transient_failures_are_retried(server: FakeNightscout, sleeps: Sleeps, failure: Any,
                                        wait: float | None) -> None:
    server.script = [failure]
    client = make_client(server, sleeps)
    assert len(client.post_entries([entry(0)])) == 1
    assert client.requests_made == 2 and len(server.entries) == 1
    assert len(sleeps) == 1
    if wait is not None:
        assert sleeps[0] == pytest.approx(wait)  # Retry-After honoured exactly
    else:
        assert 1.0 <= sleeps[0] <= 2.0  # first backoff: 1 s + up to 1 s jitter


def test_backoff_grows_and_attempts_are_bounded(server: FakeNightscout, sleeps: Sleeps) -> None:
    server.script = [fail(503)] * 10
    client = make_client(server, sleeps, retry=RetryPolicy(attempts=5, initial_s=1, max_wait_s=30, jitter_s=0))
    with pytest.raises(UploadUnavailableError) as info:
        client.post_entries([entry(0)])
    assert client.requests_made == 5
    assert sleeps == [1, 2, 4, 8]
    assert info.value.status == 503 and info.value.delivered == 0
    assert "503" in str(info.value)


def test_default_policy_is_four_attempts(server: FakeNightscout, sleeps: Sleeps) -> None:
    server.script = [httpx.ConnectError("refused")] * 10
    client = make_client(server, sleeps)
    with pytest.raises(UploadUnavailableError):
        client.post_entries([entry(0)])
    assert client.requests_made == DEFAULT_RETRY.attempts == 4 and len(sleeps) == 3


def test_long_retry_after_is_left_to_the_outbox(server: FakeNightscout, sleeps: Sleeps) -> None:
    server.script = [fail(503, {"Retry-After": "3600"})]
    client = make_client(server, sleeps)
    with pytest.raises(UploadUnavailableError) as info:
        client.post_entries([entry(0)])
    assert client.requests_made == 1 and sleeps == []
    assert info.value.retry_after_s == 3600


def test_parse_retry_after() -> None:
    now = datetime.fromtimestamp(NOW, UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(HTTP_DATE, now) == pytest.approx(12)
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None


# --- refusals --------------------------------------------------------------------------------

def test_401_for_a_plain_secret_names_the_hashed_secret_and_is_not_retried(sleeps: Sleeps) -> None:
    server = FakeNightscout(accept={"0" * 40})
    client = make_client(server, sleeps)
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0)])
    assert info.value.status == 401
    assert "SHA-1 of the configured secret" in str(info.value)
    assert "API_SECRET" in (info.value.hint or "")
    assert client.requests_made == 1 and sleeps == []


def test_401_for_a_hashed_secret(sleeps: Sleeps) -> None:
    server = FakeNightscout(accept={"0" * 40})
    client = make_client(server, sleeps, credentials=Credentials.from_secret(SECRET_SHA1))
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0)])
    assert "hashed API secret" in str(info.value) and info.value.status == 401


@pytest.mark.parametrize("status", [401, 403])
def test_token_refusal_names_the_missing_role(server: FakeNightscout, sleeps: Sleeps, status: int) -> None:
    server.script = [httpx.Response(status, json={"status": status, "message": "Unauthorized"})]
    client = make_client(server, sleeps, credentials=Credentials.from_token(TOKEN))
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0)])
    assert info.value.status == status
    assert "api:entries:create" in str(info.value)
    assert "admin" in (info.value.hint or "")
    assert server.requests[0].headers["api-secret"] == TOKEN
    assert client.requests_made == 1 and sleeps == []


def test_treatment_refusal_names_the_treatments_permission(sleeps: Sleeps) -> None:
    server = FakeNightscout(accept=set())
    client = make_client(server, sleeps, credentials=Credentials.from_token(TOKEN))
    with pytest.raises(UploadRejectedError, match="api:treatments:create"):
        client.post_treatments([{"eventType": "Note", "created_at": "2024-01-01T00:00:00.000Z"}])


def test_other_4xx_is_rejected_without_retry(server: FakeNightscout, sleeps: Sleeps) -> None:
    server.script = [httpx.Response(400, json={"status": 400, "message": "Invalid _id format"})]
    client = make_client(server, sleeps)
    with pytest.raises(UploadRejectedError) as info:
        client.post_devicestatus({"_id": "x"})
    assert info.value.status == 400 and "Invalid _id format" in str(info.value)
    assert client.requests_made == 1 and sleeps == []


# --- redirects -------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_a_post_is_refused_and_names_the_url_to_use(sleeps: Sleeps, status: int) -> None:
    server = FakeNightscout()
    server.script = [httpx.Response(status, headers={"Location": "https://127.0.0.1:1337/api/v1/entries.json"})]
    client = make_client(server, sleeps, base="http://127.0.0.1:1337")
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0)])
    assert "use https://127.0.0.1:1337 as the Nightscout URL" in str(info.value)
    assert info.value.hint == "set the Nightscout URL to https://127.0.0.1:1337"
    assert info.value.status == status
    assert client.requests_made == 1 and sleeps == [] and not server.entries


def test_redirect_elsewhere_is_refused(server: FakeNightscout) -> None:
    server.script = [httpx.Response(302, headers={"Location": "/login?next=/"})]
    client = make_client(server)
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0)])
    assert "https://ns.example.org/login" in str(info.value)
    assert client.requests_made == 1


# --- answers that are not success -------------------------------------------------------------

@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (httpx.Response(200, text="<html>Application starting</html>", headers={"Content-Type": "text/html"}),
         "text/html, not JSON"),
        (httpx.Response(200, json={"status": "ok"}), "JSON dict"),
        (httpx.Response(200, json=[]), "[] for 1 documents"),
        (httpx.Response(201, text=""), "not JSON"),
    ],
    ids=["html-200", "object-200", "empty-array-200", "empty-201"],
)
def test_a_2xx_that_is_not_a_json_array_is_not_success(server: FakeNightscout, sleeps: Sleeps,
                                                       answer: httpx.Response, words: str) -> None:
    server.script = [answer]
    client = make_client(server, sleeps, retry=NO_RETRY)
    with pytest.raises(UploadUnavailableError) as info:
        client.post_entries([entry(0)])
    assert words in str(info.value)
    assert info.value.delivered == 0


def test_not_success_is_retried_then_succeeds(server: FakeNightscout, sleeps: Sleeps) -> None:
    server.script = [httpx.Response(200, json=[])]
    client = make_client(server, sleeps)
    assert len(client.post_entries([entry(0)])) == 1 and len(sleeps) == 1


def test_missing_content_type_would_store_nothing() -> None:
    # The fake answers 200 [] to a body without Content-Type, as Nightscout does.
    server = FakeNightscout()
    response = server(httpx.Request("POST", BASE + "/api/v1/entries.json", content=b"[{}]",
                                    headers={"api-secret": SECRET_SHA1}))
    assert response.json() == []


# --- URLs and TLS ----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://ns.example.org", "http://192.168.1.10:1337", "http://[fe80::1]/"])
def test_plain_http_to_a_remote_host_is_refused(server: FakeNightscout, url: str) -> None:
    with pytest.raises(ConfigError, match="http://"):
        make_client(server, base=url)
    assert make_client(server, base=url, allow_insecure_http=True).base_url.startswith("http://")


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://127.0.0.1:1337", "http://127.0.0.1:1337"),
        ("http://127.8.9.10/", "http://127.8.9.10"),
        ("http://localhost:1337/", "http://localhost:1337"),
        ("http://[::1]:1337", "http://[::1]:1337"),
        ("https://ns.example.org/api/v1/", "https://ns.example.org"),
        ("https://example.org/ns/", "https://example.org/ns"),
    ],
)
def test_loopback_http_is_allowed_and_urls_are_normalised(server: FakeNightscout, url: str,
                                                          normalised: str) -> None:
    client = make_client(server, base=url)
    assert client.base_url == normalised
    client.post_entries([entry(0)])
    assert str(server.requests[-1].url) == normalised + "/api/v1/entries.json"


def test_secret_in_the_url_is_refused_without_echoing_it(server: FakeNightscout) -> None:
    with pytest.raises(ConfigError) as info:
        make_client(server, base=f"https://{SECRET}@ns.example.org/api/v1/")
    assert SECRET not in str(info.value) and SECRET not in (info.value.hint or "")


@pytest.mark.parametrize("url", ["ftp://ns.example.org", "ns.example.org", "https://ns.example.org/?token=x"])
def test_bad_urls_are_config_errors(server: FakeNightscout, url: str) -> None:
    with pytest.raises(ConfigError):
        make_client(server, base=url)


def test_missing_ca_bundle_is_a_config_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        NightscoutClient(BASE, Credentials.from_secret(SECRET), ca_bundle=str(tmp_path / "missing.pem"))


def test_bad_batch_size_is_a_config_error(server: FakeNightscout) -> None:
    with pytest.raises(ConfigError):
        make_client(server, batch_size=0)


# --- the client's own httpx.Client (pytest-httpx) ----------------------------------------------

def test_own_http_client_with_pytest_httpx(httpx_mock: Any) -> None:
    httpx_mock.add_response(method="POST", url=BASE + "/api/v1/entries.json", json=[dict(entry(0), _id="a" * 24)])
    with NightscoutClient(BASE, Credentials.from_secret(SECRET), sleep=Sleeps()) as client:
        assert client.post_entries([entry(0)])[0]["_id"] == "a" * 24
        assert client._http.follow_redirects is False
        assert client._http.timeout.connect == 10 and client._http.timeout.read == 30
    request = httpx_mock.get_request()
    assert request.headers["api-secret"] == SECRET_SHA1
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("dexcom-bridge/")
    assert client._http.is_closed


def test_pytest_httpx_retry_then_401(httpx_mock: Any) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    httpx_mock.add_response(status_code=401, json={"status": 401, "message": "Unauthorized"})
    sleeps = Sleeps()
    with NightscoutClient(BASE, Credentials.from_secret(SECRET), sleep=sleeps) as client:
        with pytest.raises(UploadRejectedError) as info:
            client.post_entries([entry(0)])
    assert info.value.status == 401 and len(sleeps) == 1 and client.requests_made == 2


# --- verifyauth, gap audit -------------------------------------------------------------------

def test_verify_auth(server: FakeNightscout) -> None:
    result = make_client(server).verify_auth()
    assert result["message"] == "OK" and result["canWrite"] is True
    assert server.requests[0].url.path == "/api/v1/verifyauth"
    bad = make_client(FakeNightscout(accept=set())).verify_auth()
    assert bad["message"] == "UNAUTHORIZED" and bad["canWrite"] is False


def test_verify_auth_old_server_string_message(server: FakeNightscout) -> None:
    server.script = [httpx.Response(200, json={"status": 200, "message": "OK"})]
    assert make_client(server).verify_auth() == {"message": "OK"}


def test_entries_between_queries_the_window_for_the_device(server: FakeNightscout) -> None:
    client = make_client(server)
    client.post_entries([entry(i) for i in range(40)])
    start = datetime(2024, 1, 1, 0, 50, tzinfo=UTC)
    end = datetime(2024, 1, 1, 1, 40, tzinfo=UTC)
    got = client.entries_between("dexcom-bridge://SM1", start, end)
    assert sorted(d["sgv"] for d in got) == [100 + i for i in range(10, 21)]
    params = server.requests[-1].url.params
    assert params["find[date][$gte]"] == str(int(start.timestamp() * 1000))
    assert params["find[date][$lte]"] == str(int(end.timestamp() * 1000))
    assert params["find[device]"] == "dexcom-bridge://SM1"
    assert int(params["count"]) >= 1000
    assert client.entries_between("someone-else", start, end) == []


def test_entries_between_pages_through_a_long_window(server: FakeNightscout) -> None:
    client = make_client(server, batch_size=1000)
    client.post_entries([entry(i) for i in range(2500)])
    before = client.requests_made
    got = client.entries_between("dexcom-bridge://SM1", datetime(2023, 1, 1, tzinfo=UTC),
                                 datetime(2025, 1, 1, tzinfo=UTC))
    assert len(got) == 2500 and len({d["date"] for d in got}) == 2500
    assert client.requests_made - before == 3


# --- JWT -------------------------------------------------------------------------------------

def test_bearer_token_is_exchanged_for_a_jwt_once(server: FakeNightscout) -> None:
    client = make_client(server, credentials=Credentials.from_token(TOKEN, bearer=True))
    client.post_entries([entry(0)])
    client.post_entries([entry(1)])
    jwt_request, first, second = server.requests
    assert jwt_request.method == "GET" and jwt_request.url.path == f"/api/v2/authorization/request/{TOKEN}"
    assert "api-secret" not in jwt_request.headers and "authorization" not in jwt_request.headers
    for request in (first, second):
        assert request.headers["authorization"] == f"Bearer {JWT}"
        assert "api-secret" not in request.headers and TOKEN not in str(request.url)
    assert client.requests_made == 3


def test_expired_jwt_is_renewed(server: FakeNightscout) -> None:
    now = [NOW]
    client = make_client(server, credentials=Credentials.from_token(TOKEN, bearer=True))
    client._clock = lambda: now[0]
    client.post_entries([entry(0)])
    now[0] += 8 * 3600 - 60  # within the refresh margin
    client.post_entries([entry(1)])
    paths = [r.url.path for r in server.requests]
    assert paths.count(f"/api/v2/authorization/request/{TOKEN}") == 2


def test_jwt_refused_after_a_server_rebuild_is_renewed_once(server: FakeNightscout) -> None:
    client = make_client(server, credentials=Credentials.from_token(TOKEN, bearer=True))
    client.post_entries([entry(0)])
    server.jwts = {"new.jwt.value"}
    server.script = [httpx.Response(401), httpx.Response(200, json={"token": "new.jwt.value", "exp": NOW + 3600})]
    client.post_entries([entry(1)])
    assert server.requests[-1].headers["authorization"] == "Bearer new.jwt.value"
    assert len(server.entries) == 2


def test_unknown_token_is_rejected(server: FakeNightscout, sleeps: Sleeps) -> None:
    client = make_client(server, sleeps, credentials=Credentials.from_token("stranger-0123456789abcdef", bearer=True))
    with pytest.raises(UploadRejectedError) as info:
        client.post_entries([entry(0)])
    assert "does not know the access token" in str(info.value) and info.value.status == 401
    assert "stranger-0123456789abcdef" not in str(info.value)
    assert sleeps == []


# --- the secret never leaks --------------------------------------------------------------------

@pytest.mark.parametrize(
    "credentials",
    [Credentials.from_secret(SECRET), Credentials.from_secret(SECRET_SHA1), Credentials.from_token(TOKEN),
     Credentials.from_token(TOKEN, bearer=True)],
    ids=["plain", "hashed", "token", "bearer"],
)
def test_secret_never_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture, credentials: Credentials) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = (SECRET, SECRET_SHA1, TOKEN, JWT)
    texts: list[str] = []
    failures: list[Any] = [
        httpx.ConnectError(f"failed for {credentials.header_value}"),  # even an echo of it is redacted
        fail(500),
        httpx.Response(307, headers={"Location": "https://ns.example.org/api/v1/entries.json"}),
        httpx.Response(401, json={"status": 401}),
        httpx.Response(401, json={"status": 401}),
        httpx.Response(200, text="<html/>"),
    ]
    server = FakeNightscout(accept={SECRET_SHA1, TOKEN})
    for failure in failures:
        server.script = [failure]
        if credentials.bearer:
            server.script.insert(0, PASS)  # let the JWT exchange through first
        client = make_client(server, retry=NO_RETRY, credentials=credentials)
        texts.append(repr(client))
        try:
            client.post_entries([entry(0)])
        except UploadError as exc:
            texts += [str(exc), repr(exc), exc.hint or ""]
    client = make_client(server, credentials=credentials)
    client.post_entries([entry(1)])
    client.verify_auth()
    texts += [repr(client), str(client.__dict__.get("base_url"))]
    texts += [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in t for t in texts)  # httpx's own request log lines were captured
    assert any("/api/v2/authorization/request/***" in t for t in texts) is credentials.bearer
    for text in texts:
        for secret in secrets:
            assert secret not in text, text
    for request in server.requests:
        url = str(request.url)
        if request.url.path.startswith("/api/v2/authorization/request/"):
            url = url.replace(TOKEN, "")  # the JWT exchange carries the token by Nightscout's design
        for secret in secrets:
            assert secret not in url
