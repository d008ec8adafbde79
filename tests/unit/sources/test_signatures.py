"""Inbound requests are accepted only when signed the tool's way; every refusal says why and where.

Known-answer vectors come from outside this code: the HMAC-SHA256 one is the X-Hub-Signature
example GitHub documents (secret ``It's a Secret to Everybody``, body ``Hello, World!``); the
others were computed with ``openssl dgst -hmac``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import pytest

from service.errors import SignatureRefused
from service.sources import signatures
from service.sources.signatures import Scheme, sign, verify

SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
SHA256 = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SHA1 = "01dc10d0c83e72ed246219cdd91669667fe2ca59"
GLPI_BODY = b'{"event":"new"}'
GLPI_SIGNATURE = "92f39a32daf10184d855ad1ff4b9cd7ef63cf27873f578f1c761d1c9ae84880d"


def refusal(scheme: Scheme, secret: str, headers: dict[str, str], body: bytes = BODY) -> str:
    with pytest.raises(SignatureRefused) as caught:
        verify(scheme, secret, headers, body)
    assert caught.value.status_code == 401
    return str(caught.value)


class TestKnownAnswers:
    def test_jira_sha256_hub_signature_is_accepted(self) -> None:
        verify(Scheme.HMAC_SHA256, SECRET, {"X-Hub-Signature": f"sha256={SHA256}"}, BODY)

    def test_zammad_sha1_hub_signature_is_accepted(self) -> None:
        verify(Scheme.HMAC_SHA1, SECRET, {"X-Hub-Signature": f"sha1={SHA1}"}, BODY)

    def test_glpi_signature_covers_body_then_timestamp(self) -> None:
        headers = {"X-GLPI-signature": GLPI_SIGNATURE, "X-GLPI-timestamp": "1700000000"}
        verify(Scheme.GLPI, "glpi-secret", headers, GLPI_BODY)

    def test_basic_credentials_may_contain_colons_in_the_password(self) -> None:
        verify(Scheme.BASIC, "svc:pa:ss", {"Authorization": "Basic c3ZjOnBhOnNz"}, BODY)

    def test_bearer_token_is_accepted(self) -> None:
        verify(Scheme.BEARER, "t0ken", {"Authorization": "Bearer t0ken"}, BODY)

    @pytest.mark.parametrize("scheme", list(Scheme))
    def test_what_sign_produces_verifies(self, scheme: Scheme) -> None:
        secret = "user:secret" if scheme is Scheme.BASIC else SECRET
        verify(scheme, secret, sign(scheme, secret, BODY, timestamp=1700000000), BODY)

    def test_sign_reproduces_the_documented_vectors(self) -> None:
        assert sign(Scheme.HMAC_SHA256, SECRET, BODY) == {"X-Hub-Signature": f"sha256={SHA256}"}
        assert sign(Scheme.HMAC_SHA1, SECRET, BODY) == {"X-Hub-Signature": f"sha1={SHA1}"}
        assert sign(Scheme.GLPI, "glpi-secret", GLPI_BODY, timestamp=1700000000) == {
            "X-GLPI-signature": GLPI_SIGNATURE,
            "X-GLPI-timestamp": "1700000000",
        }


class TestHeaderForms:
    def test_header_names_ignore_case(self) -> None:
        verify(Scheme.HMAC_SHA256, SECRET, {"x-hub-signature": f"sha256={SHA256}"}, BODY)

    def test_upper_case_hex_and_prefix_are_the_same_signature(self) -> None:
        verify(Scheme.HMAC_SHA256, SECRET, {"X-Hub-Signature": f"SHA256={SHA256.upper()}"}, BODY)

    def test_surrounding_whitespace_is_ignored(self) -> None:
        verify(Scheme.HMAC_SHA1, SECRET, {"X-Hub-Signature": f"  sha1={SHA1} "}, BODY)

    def test_auth_words_ignore_case(self) -> None:
        verify(Scheme.BEARER, "t0ken", {"authorization": "bearer t0ken"}, BODY)


class TestRefusals:
    def test_missing_hub_signature(self) -> None:
        assert (
            refusal(Scheme.HMAC_SHA256, SECRET, {})
            == "missing signature - in header `X-Hub-Signature`"
        )

    def test_empty_hub_signature_counts_as_missing(self) -> None:
        assert (
            refusal(Scheme.HMAC_SHA1, SECRET, {"X-Hub-Signature": ""})
            == "missing signature - in header `X-Hub-Signature`"
        )

    def test_body_changed_after_signing(self) -> None:
        headers = {"X-Hub-Signature": f"sha256={SHA256}"}
        assert (
            refusal(Scheme.HMAC_SHA256, SECRET, headers, b"Hello, World?")
            == "signature does not match the body - in header `X-Hub-Signature`"
        )

    def test_signed_with_another_secret(self) -> None:
        headers = {"X-Hub-Signature": f"sha1={SHA1}"}
        assert (
            refusal(Scheme.HMAC_SHA1, "another secret", headers)
            == "signature does not match the body - in header `X-Hub-Signature`"
        )

    @pytest.mark.parametrize(
        "value",
        [
            SHA256,  # no algorithm prefix
            f"sha256:{SHA256}",  # wrong separator
            f"sha256={SHA256[:-1]}",  # truncated
            f"sha256={SHA256}00",  # too long
            f"sha256={'z' * 64}",  # not hex
            f"sha256={SHA256[:-1]}é",  # not ASCII
            f"sha1={SHA1}",  # a weaker algorithm than the scheme's
            f"sha512={SHA256}",
        ],
    )
    def test_malformed_sha256_signatures(self, value: str) -> None:
        assert (
            refusal(Scheme.HMAC_SHA256, SECRET, {"X-Hub-Signature": value})
            == "malformed signature: expected `sha256=<hex digest>` - in header `X-Hub-Signature`"
        )

    def test_sha256_signature_where_zammad_sends_sha1(self) -> None:
        assert (
            refusal(Scheme.HMAC_SHA1, SECRET, {"X-Hub-Signature": f"sha256={SHA256}"})
            == "malformed signature: expected `sha1=<hex digest>` - in header `X-Hub-Signature`"
        )

    def test_glpi_without_timestamp(self) -> None:
        assert (
            refusal(Scheme.GLPI, "glpi-secret", {"X-GLPI-signature": GLPI_SIGNATURE}, GLPI_BODY)
            == "missing signature timestamp - in header `X-GLPI-timestamp`"
        )

    def test_glpi_with_another_timestamp(self) -> None:
        headers = {"X-GLPI-signature": GLPI_SIGNATURE, "X-GLPI-timestamp": "1700000001"}
        assert (
            refusal(Scheme.GLPI, "glpi-secret", headers, GLPI_BODY)
            == "signature does not match the body and timestamp - in header `X-GLPI-signature`"
        )

    def test_glpi_with_a_non_numeric_timestamp(self) -> None:
        headers = {"X-GLPI-signature": GLPI_SIGNATURE, "X-GLPI-timestamp": "yesterday"}
        assert (
            refusal(Scheme.GLPI, "glpi-secret", headers, GLPI_BODY)
            == "malformed timestamp: expected Unix seconds - in header `X-GLPI-timestamp`"
        )

    def test_glpi_with_a_hub_style_prefix(self) -> None:
        headers = {"X-GLPI-signature": f"sha256={GLPI_SIGNATURE}", "X-GLPI-timestamp": "1"}
        assert (
            refusal(Scheme.GLPI, "glpi-secret", headers, GLPI_BODY)
            == "malformed signature: expected a hex HMAC-SHA256 - in header `X-GLPI-signature`"
        )

    def test_glpi_without_signature(self) -> None:
        assert (
            refusal(Scheme.GLPI, "glpi-secret", {"X-GLPI-timestamp": "1"}, GLPI_BODY)
            == "missing signature - in header `X-GLPI-signature`"
        )

    def test_wrong_bearer_token(self) -> None:
        assert (
            refusal(Scheme.BEARER, "t0ken", {"Authorization": "Bearer t0ken2"})
            == "wrong credentials - in header `Authorization`"
        )

    def test_bearer_token_that_is_a_prefix_of_the_secret(self) -> None:
        assert (
            refusal(Scheme.BEARER, "t0ken", {"Authorization": "Bearer t0k"})
            == "wrong credentials - in header `Authorization`"
        )

    def test_basic_credentials_where_a_bearer_token_is_due(self) -> None:
        assert (
            refusal(Scheme.BEARER, "t0ken", {"Authorization": "Basic dDBrZW4="})
            == "malformed credentials: expected `Bearer <token>` - in header `Authorization`"
        )

    def test_missing_authorization(self) -> None:
        assert (
            refusal(Scheme.BASIC, "svc:pass", {})
            == "missing credentials - in header `Authorization`"
        )

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("Basic", "malformed credentials: expected `Basic <base64>`"),
            ("Bearer c3ZjOnBhc3M=", "malformed credentials: expected `Basic <base64>`"),
            ("Basic not*base64", "malformed credentials: not base64"),
            ("Basic c3ZjcGFzcw==", "malformed credentials: expected `user:password`"),
            ("Basic c3ZjOnBhc3N3b3Jk", "wrong credentials"),  # svc:password
        ],
    )
    def test_bad_basic_credentials(self, value: str, reason: str) -> None:
        assert (
            refusal(Scheme.BASIC, "svc:pass", {"Authorization": value})
            == f"{reason} - in header `Authorization`"
        )

    @pytest.mark.parametrize("scheme", list(Scheme))
    def test_an_empty_secret_is_a_configuration_error_not_an_open_door(
        self, scheme: Scheme
    ) -> None:
        with pytest.raises(ValueError, match=f"the {scheme.value} secret is empty"):
            verify(scheme, "", sign(scheme, "", BODY), BODY)


class TestConstantTime:
    """Every accept-or-refuse decision is made by ``hmac.compare_digest`` on equal lengths."""

    @pytest.fixture
    def comparisons(self, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        real: Callable[..., bool] = hmac.compare_digest

        def spy(a: str | bytes, b: str | bytes) -> bool:
            seen.append((len(a), len(b)))
            return real(a, b)

        monkeypatch.setattr(signatures.hmac, "compare_digest", spy)
        return seen

    @pytest.mark.parametrize("scheme", list(Scheme))
    @pytest.mark.parametrize("valid", [True, False])
    def test_comparison_is_constant_time_and_equal_length(
        self, scheme: Scheme, valid: bool, comparisons: list[tuple[int, int]]
    ) -> None:
        secret = "user:a-much-longer-secret" if scheme is Scheme.BASIC else "a-much-longer-secret"
        headers = sign(scheme, secret if valid else secret[:4] + ":x", BODY, timestamp=5)
        if valid:
            verify(scheme, secret, headers, BODY)
        else:
            with pytest.raises(SignatureRefused):
                verify(scheme, secret, headers, BODY)
        assert len(comparisons) == 1
        given, expected = comparisons[0]
        assert given == expected


class TestRawHeaders:
    """The route reads only the headers a scheme needs from the ASGI list; the answer is the
    one the whole header map gave (the first of a repeated name, any case)."""

    @staticmethod
    def _as_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(raw)}

    @pytest.mark.parametrize("scheme", list(Scheme))
    @pytest.mark.parametrize("valid", [True, False])
    @pytest.mark.parametrize("shape", ["lower", "mixed", "repeated", "extra", "missing"])
    def test_reading_the_raw_headers_decides_as_the_whole_map(
        self, scheme: Scheme, valid: bool, shape: str
    ) -> None:
        secret = "svc:pass" if scheme is Scheme.BASIC else "a-secret"
        signed = sign(scheme, secret if valid else "svc:other", BODY, timestamp=5)
        raw = [(b"host", b"x"), (b"content-type", b"application/json")]
        for name, value in signed.items():
            key = name.encode() if shape == "mixed" else name.lower().encode()
            if shape != "missing":
                raw.append((key, value.encode("latin-1")))
            if shape == "repeated":
                raw.append((key, b"sha256=00 second copy"))
        if shape == "extra":
            raw.append((b"x-other", b"1"))

        def outcome(headers: dict[str, str]) -> str:
            try:
                verify(scheme, secret, headers, BODY)
            except SignatureRefused as exc:
                return str(exc)
            return "accepted"

        read = signatures.read_headers(scheme, raw)
        assert outcome(read) == outcome(self._as_map(raw))
        assert set(read) <= {"authorization", "x-hub-signature", "x-glpi-signature",
                             "x-glpi-timestamp"}  # fmt: skip


class TestAcceptedAsSigned:
    """``accepts_as_signed``: the credentials header exactly as ``sign`` writes it is accepted
    without ``verify``'s parsing; anything else is left to ``verify`` (False), never accepted
    where ``verify`` would refuse."""

    @staticmethod
    def _raw(*headers: tuple[str, str]) -> list[tuple[bytes, bytes]]:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]

    def _agrees(self, scheme: Scheme, secret: str, *headers: tuple[str, str]) -> bool:
        """accepts_as_signed's answer, checked against verify's on the same headers."""
        raw = self._raw(*headers)
        quick = signatures.accepts_as_signed(scheme, secret, raw)
        if quick:  # then verify accepts the same request
            verify(scheme, secret, signatures.read_headers(scheme, raw), b"")
        return quick

    @pytest.mark.parametrize("scheme", [Scheme.BEARER, Scheme.BASIC])
    def test_the_header_as_signed_is_accepted(self, scheme: Scheme) -> None:
        (name, value), *_ = sign(scheme, "tok:en", b"").items()
        assert self._agrees(scheme, "tok:en", ("host", "x"), (name.lower(), value))

    @pytest.mark.parametrize(
        "value",
        [
            "bearer tok:en",  # verify accepts the other spelling; the quick check leaves it
            "Bearer  tok:en",
            "Bearer tok:en ",
            "Bearer tok:e",
            "Bearer tok:enn",
            "Bearer other",
            "",
        ],
    )
    def test_any_other_value_is_left_to_verify(self, value: str) -> None:
        assert not self._agrees(Scheme.BEARER, "tok:en", ("authorization", value))

    def test_the_first_credentials_header_counts_as_in_verify(self) -> None:
        good, bad = ("authorization", "Bearer tok:en"), ("Authorization", "Bearer other")
        assert not self._agrees(Scheme.BEARER, "tok:en", bad, good)
        assert self._agrees(Scheme.BEARER, "tok:en", good, bad)

    def test_no_credentials_header_is_left_to_verify(self) -> None:
        assert not self._agrees(Scheme.BEARER, "tok:en", ("x-authorization", "Bearer tok:en"))

    @pytest.mark.parametrize("secret", [" padded", "padded ", "caf\u00e9", "\u2603"])
    def test_a_secret_verify_does_not_take_as_written_is_left_to_it(self, secret: str) -> None:
        value = f"Bearer {secret}".encode()  # as a client would send it, in UTF-8
        raw = [(b"authorization", value)]
        quick = signatures.accepts_as_signed(Scheme.BEARER, secret, raw)
        try:
            verify(Scheme.BEARER, secret, signatures.read_headers(Scheme.BEARER, raw), b"")
        except SignatureRefused:
            assert not quick
        # Where verify accepts, the quick check may say either: verify runs after a False.

    @pytest.mark.parametrize("scheme", [Scheme.HMAC_SHA256, Scheme.HMAC_SHA1, Scheme.GLPI])
    def test_signature_schemes_always_take_verify(self, scheme: Scheme) -> None:
        headers = sign(scheme, SECRET, BODY, timestamp=1)
        raw = self._raw(*((k.lower(), v) for k, v in headers.items()))
        assert not signatures.accepts_as_signed(scheme, SECRET, raw)
