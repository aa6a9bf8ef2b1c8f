"""The ``bridge server`` click command (registered by ``bridge/cli.py``).

Layer: server (CLI). Imports click and stdlib at import time; starlette and uvicorn are
imported only when the command runs, so ``bridge --help`` works without the ``server`` extra.
The secret comes from ``API_SECRET``/``BRIDGE_API_SECRET`` or ``--secret-file``, never argv.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

from bridge.server.settings import (
    DEFAULT_AUTH_FAIL_DELAY_S,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
    MIN_SECRET_LENGTH,
    ROLES,
    ServerSettings,
    default_db_path,
)

__all__ = ["server"]

SECRET_ENV_VARS = ("BRIDGE_API_SECRET", "API_SECRET")


@click.command("server")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (HTTPS with --certfile).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite database [default: nightscout.sqlite in the state directory].")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate: serve HTTPS.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM private key for --certfile.")
@click.option("--redirect-http", "redirect_http", type=click.IntRange(1, 65535), metavar="PORT",
              help="Also listen for plain HTTP on PORT: GET/HEAD redirect to https, others get 403.")
@click.option("--default-role", type=click.Choice(["readable", "denied"]), default="readable",
              show_default=True, help="Role of requests without credentials.")
@click.option("--auth-fail-delay", type=click.FloatRange(min=0), default=DEFAULT_AUTH_FAIL_DELAY_S,
              show_default=True, metavar="S", help="Seconds added per failed authentication per address.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BODY_BYTES,
              show_default=True, help="Largest request body (after decompression); larger gets 413.")
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding API_SECRET (else the API_SECRET environment variable).")
@click.option("--create-token", "token_name", metavar="NAME",
              help="Create an access token for subject NAME with --role, print it and exit.")
@click.option("--role", type=click.Choice(list(ROLES)), default="admin", show_default=True,
              help="Role of the token made by --create-token.")
def server(host: str, port: int, db_path: Path | None, certfile: Path | None, keyfile: Path | None,
           redirect_http: int | None, default_role: str, auth_fail_delay: float, max_body_bytes: int,
           secret_file: Path | None, token_name: str | None, role: str) -> None:
    """Run the bundled Nightscout-compatible server with its live page.

    The API secret comes from API_SECRET (or BRIDGE_API_SECRET) or --secret-file, never argv.

    \b
    Examples:
      API_SECRET='a long secret' bridge server --port 1337
      bridge server --certfile cert.pem --keyfile key.pem --port 443 --redirect-http 80 --secret-file s.txt
      bridge server --create-token follower --role readable
    """
    if keyfile is not None and certfile is None:
        raise click.UsageError("--keyfile needs --certfile")
    if redirect_http is not None and certfile is None:
        raise click.UsageError("--redirect-http needs --certfile (it redirects to https)")
    settings = ServerSettings(db_path=db_path or default_db_path(), api_secret=_read_secret(secret_file),
                              default_role=default_role, auth_fail_delay_s=auth_fail_delay,
                              max_body_bytes=max_body_bytes)
    if token_name is not None:
        click.echo(_create_token(settings, token_name, role))
        return
    _serve(settings, host, port, certfile, keyfile, redirect_http)


def _read_secret(secret_file: Path | None) -> str | None:
    """Return the API secret from ``--secret-file`` or the environment; check its length."""
    if secret_file is not None:
        secret: str | None = secret_file.read_text(encoding="utf-8").strip()
    else:
        secret = next((os.environ[v] for v in SECRET_ENV_VARS if os.environ.get(v)), None)
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise click.BadParameter(f"the API secret must have at least {MIN_SECRET_LENGTH} characters "
                                 "(as Nightscout requires)", param_hint="API_SECRET / --secret-file")
    return secret or None


def _create_token(settings: ServerSettings, name: str, role: str) -> str:
    """Create an access token in the database and return it."""
    from bridge.server.db import Database, StorageError

    try:
        db = Database(settings.db_path)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        return db.create_token(name, role, time.time_ns() // 1_000_000)
    finally:
        db.close()


def _serve(settings: ServerSettings, host: str, port: int, certfile: Path | None, keyfile: Path | None,
           redirect_http: int | None) -> None:
    """Build the app and serve it until interrupted."""
    try:
        from bridge.server.app import create_app
        from bridge.server.db import StorageError
        from bridge.server.runner import Listen, run
    except ImportError as exc:
        raise click.ClickException(f"{exc}: install the server extra: pip install 'dexcom-bridge[server]'") from exc
    if settings.api_secret is None:
        click.echo("warning: no API_SECRET: only admin access tokens can upload", err=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    scheme = "https" if certfile else "http"
    click.echo(f"serving {scheme}://{host}:{port}/ (database {settings.db_path})", err=True)
    run(app, Listen(host=host, port=port, certfile=certfile, keyfile=keyfile, redirect_http_port=redirect_http))
