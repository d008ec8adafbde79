"""One log format: text for people, JSON lines on request, and no value can forge a line."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from service.logs import JsonFormatter, TextFormatter, escape, setup, write_access

FORGED = "A\n2026-11-30 11:00:00.000 CRITICAL usm.security: keys leaked"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError(f"unknown team {FORGED!s}")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("usm.worker", logging.INFO, __file__, 1, msg, args, info)


def test_control_characters_are_written_out() -> None:
    assert escape("a\nb\rc\td\x00e\x1bf\x7fg\x85h\u2028i") == (
        "a\\nb\\rc\\td\\x00e\\x1bf\\x7fg\\x85h\\u2028i"
    )
    assert escape("plain ünïcode ✓") == "plain ünïcode ✓"


def test_an_ascii_text_with_one_control_character_has_it_written_out() -> None:
    # Plain ASCII skips the per-character table: each control character alone must not.
    for c in (*range(0x20), 0x7F):
        written = escape(f"/v1/{chr(c)}x")
        assert written != f"/v1/{chr(c)}x" and written.isprintable(), hex(c)
    assert escape("/v1/priority?version=2026.1 ~!") == "/v1/priority?version=2026.1 ~!"


def test_a_text_line_reads_time_level_logger_message() -> None:
    line = TextFormatter().format(_record("item %s queued", "01a2"))
    time, level, rest = line[:23], line[24:28], line[29:]
    assert time[4] == "-" and time[10] == " " and time[19] == "."
    assert (level, rest) == ("INFO", "usm.worker: item 01a2 queued")


def test_an_id_with_a_newline_cannot_forge_a_text_line() -> None:
    line = TextFormatter().format(_record("item for %s", FORGED))
    assert line.count("\n") == 0
    assert line.endswith("item for A\\n2026-11-30 11:00:00.000 CRITICAL usm.security: keys leaked")


def test_a_traceback_is_indented_so_none_of_its_lines_passes_for_a_record() -> None:
    text = TextFormatter().format(_record("failed", exc=True))
    first, *rest = text.splitlines()
    assert first.endswith("INFO usm.worker: failed")
    assert rest and all(line.startswith("    ") for line in rest)
    assert "\n    2026-11-30 11:00:00.000 CRITICAL" in text  # the exception's own line break


def test_a_json_line_holds_the_fields_and_escapes_by_json_rules() -> None:
    record = _record("%s %s", "GET", FORGED)
    record.fields = {"status": 200, "key": "jira"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    got = json.loads(line)
    assert got["message"] == f"GET {FORGED}"
    assert (got["level"], got["logger"], got["status"], got["key"]) == (
        "INFO",
        "usm.worker",
        200,
        "jira",
    )
    assert got["time"].endswith("Z") and got["time"][10] == "T"


def test_setup_names_the_allowed_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USM_LOG_FORMAT", raising=False)
    with pytest.raises(ValueError) as err:
        setup("INFO", "xml")
    assert str(err.value) == "unknown log format 'xml'; allowed: text, json"


def _capture(monkeypatch: pytest.MonkeyPatch, fmt: str) -> io.StringIO:
    monkeypatch.setattr(sys, "stderr", out := io.StringIO())
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setattr(root, "handlers", saved[0])  # put back when the test ends
    monkeypatch.setattr(root, "level", saved[1])
    monkeypatch.delenv("USM_LOG_FORMAT", raising=False)  # setup() sets both: put them back
    monkeypatch.delenv("USM_LOG_LEVEL", raising=False)
    setup("INFO", fmt)
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_access_line_reads_as_a_usm_access_record_would(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = _capture(monkeypatch, fmt)
    created = 1_795_000_000.25
    write_access([(created, "GET", f"/v1/items/{FORGED}", 404, 1.25, "jira")])
    record = logging.LogRecord(
        "usm.access", logging.INFO, "", 0, "%s %s %d %.1fms key=%s",
        ("GET", f"/v1/items/{FORGED}", 404, 1.25, "jira"), None,
    )  # fmt: skip
    record.created, record.msecs = created, 250.0
    record.fields = {
        "method": "GET",
        "path": f"/v1/items/{FORGED}",
        "status": 404,
        "duration_ms": 1.25,
        "key": "jira",
    }
    formatter = TextFormatter() if fmt == "text" else JsonFormatter()
    assert out.getvalue() == formatter.format(record) + "\n"
    assert out.getvalue().count("\n") == 1


def test_records_follow_stderr_when_it_is_swapped_and_the_old_one_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: the handler kept the stderr of the moment setup() ran; once pytest closed that
    # capture, a later test's background thread failed on every record ("I/O operation on
    # closed file").
    first = _capture(monkeypatch, "text")
    monkeypatch.setattr(sys, "stderr", second := io.StringIO())
    first.close()
    errors: list[BaseException] = []
    monkeypatch.setattr(logging, "raiseExceptions", True)
    monkeypatch.setattr(
        logging.Handler, "handleError", lambda self, record: errors.append(sys.exc_info()[1])
    )
    logging.getLogger("usm.test").warning("after the swap")
    write_access([(1_795_000_000.0, "GET", "/healthz", 200, 0.5, "-")])
    assert not errors, errors
    assert "WARNING usm.test: after the swap" in second.getvalue()
    assert "usm.access: GET /healthz 200" in second.getvalue()
