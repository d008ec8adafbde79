"""The tools' documented payloads (``tests/fixtures/sources``) and the secrets and signing
schemes the tests give each source of ``tables/2026.1``."""

from __future__ import annotations

from pathlib import Path

from service.sources.signatures import Scheme

__all__ = ["FIXTURES", "SCHEMES", "SECRETS"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
SECRETS = {
    "rt": "rt-scrip-token",
    "jira": "jira-webhook-secret",
    "jira_automation": "automation-token",
    "servicenow": "svc-usm:s3cret",
    "zammad": "zammad-hmac-token",
    "glpi": "glpi-webhook-secret",
}
SCHEMES = {
    "rt": Scheme.BEARER,
    "jira": Scheme.HMAC_SHA256,
    "jira_automation": Scheme.BEARER,
    "servicenow": Scheme.BASIC,
    "zammad": Scheme.HMAC_SHA1,
    "glpi": Scheme.GLPI,
}
