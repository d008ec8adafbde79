"""A throwaway Request Tracker 5 (Debian packages) on a free loopback port, SQLite in a temp dir.

Set up once per test session: database init, a service account for usm's write-back, and the
project's own ``integrations/rt/initialdata.pm`` (custom fields and the USM scrip). The pitfalls
(from shared/rt5/recipe.sh): RT_SITE_CONFIG + RT_SITE_CONFIG_DIR isolate the instance from
/etc/request-tracker5; WebPort must equal the listen port; BcryptCost 4 keeps password checks
cheap; rt-server stops on TERM (not INT); REST2 PUT dates are ``YYYY-MM-DD HH:MM:SS`` UTC.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ROOT
from tests.support.redis_server import free_port

__all__ = ["RT_SERVER", "RtServer", "rt_installed"]

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
SERVICE_USER, SERVICE_PASSWORD = "usm-svc", "svc-secret-1"
ROOT_PASSWORD = "secret123"
_WORKERS = ("--max-workers", "2")

_SERVICE_ACCOUNT = """
@Users = ( { Name => 'usm-svc', Password => 'svc-secret-1',
             EmailAddress => 'usm-svc@rt-test.local', Privileged => 1 } );
@ACL = map { { UserId => 'usm-svc', Right => $_ } }
    qw(SeeQueue CreateTicket ShowTicket ModifyTicket CommentOnTicket ShowTicketComments
       ReplyToTicket SeeCustomField ModifyCustomField);
1;
"""


def rt_installed() -> bool:
    return RT_SERVER.is_file() and shutil.which("rt-setup-database-5") is not None


class RtServer:
    """One RT instance; ``events_url`` is where its USM scrip posts (usm's source endpoint)."""

    def __init__(self, directory: Path, events_url: str, token: str) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (directory / "etc" / "RT_SiteConfig.d").mkdir(parents=True)
        for sub in ("mason_data", "session_data"):
            (directory / "var" / sub).mkdir(parents=True)
        (directory / "root-password").write_text(ROOT_PASSWORD + "\n")
        (directory / "etc" / "RT_SiteConfig.pm").write_text(
            f"""
Set($rtname, 'rt-test');
Set($Organization, 'rt-test.local');
Set($CorrespondAddress, 'rt@rt-test.local');
Set($CommentAddress, 'rt-comment@rt-test.local');
Set($Timezone, 'UTC');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {self.port});
Set($WebPath, '');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{directory}/rt.sqlite');
Set($VarPath, '{directory}/var');
Set($MasonDataDir, '{directory}/var/mason_data');
Set($MasonSessionDir, '{directory}/var/session_data');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($BcryptCost, 4);
Set($MailCommand, 'mbox');
Set($USMEventsURL, '{events_url}');
Set($USMEventsToken, '{token}');
Set($USMServiceUser, '{SERVICE_USER}');
1;
"""
        )
        (directory / "service-account.pm").write_text(_SERVICE_ACCOUNT)
        self.env = {
            **os.environ,
            "RT_SITE_CONFIG": str(directory / "etc" / "RT_SiteConfig.pm"),
            "RT_SITE_CONFIG_DIR": str(directory / "etc" / "RT_SiteConfig.d"),
        }
        self.api = f"http://127.0.0.1:{self.port}/REST/2.0"

    def _setup(self, *args: str) -> None:
        with (self.dir / "setup.log").open("ab") as log:
            subprocess.run(
                ["rt-setup-database-5", *args],
                cwd=self.dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=300,
            )

    def install(self) -> None:
        """Create the database: RT's schema, the service account, then the project's own data."""
        self._setup(
            "--action",
            "init",
            "--skip-create",
            "--root-password-file",
            str(self.dir / "root-password"),
        )
        self._setup("--action", "insert", "--datafile", str(self.dir / "service-account.pm"))
        initialdata = ROOT / "integrations" / "rt" / "initialdata.pm"
        self._setup("--action", "insert", "--datafile", str(initialdata))

    def start(self, timeout: float = 120.0) -> None:
        with (self.dir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(RT_SERVER), "--host", "127.0.0.1", "--port", str(self.port), *_WORKERS],
                cwd=self.dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rt-server exited: {self.log()[-3000:]}")
            try:
                httpx.get(f"{self.api}/rt", timeout=5)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"RT did not answer within {timeout} s: {self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # TERM: rt-server ignores INT
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, user: str = "root", password: str = ROOT_PASSWORD) -> httpx.Client:
        """A REST2 client; root is the person working in RT, usm-svc the write-back account."""
        return httpx.Client(base_url=self.api, auth=(user, password), timeout=60)

    def backdate(self, ticket_id: int, created: datetime) -> None:
        """Set a ticket's creation time, as an import from another tool leaves it.

        RT takes ``Created`` only from its importers, not over REST2, so the test writes it in
        RT's database (SQLite, UTC); RT reads it afresh on the ticket's next load.
        """
        with contextlib.closing(sqlite3.connect(self.dir / "rt.sqlite", timeout=60)) as db:
            at = created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            db.execute("UPDATE Tickets SET Created = ? WHERE id = ?", (at, ticket_id))
            db.commit()

    @staticmethod
    def ticket(client: httpx.Client, ticket_id: int) -> dict[str, Any]:
        """Status, Priority, Due and custom field values of one ticket."""
        data = client.get(f"/ticket/{ticket_id}").raise_for_status().json()
        fields = {
            cf["name"]: (cf["values"][0] if len(cf["values"]) == 1 else cf["values"] or None)
            for cf in data.get("CustomFields") or []
        }
        return {
            "Status": data["Status"],
            "Priority": int(data["Priority"]),
            "Due": data["Due"],
            "cf": fields,
        }
