"""Unit tests for portal.services.postback_signing (HMAC-SHA256 postback signatures)."""
from __future__ import annotations

import hashlib
import hmac
import shlex
import time
from pathlib import Path

import pytest
from flask_babel import LazyString
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from portal.services.postback_signing import (
    DEFAULT_WINDOW, NETWORK_HEADER, SECRET_ENV, SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError,
    main, network_code, sign, signature_for, signed_curl, verify,
)

SECRET = b"n3tw0rk-s3cret"
BODY = b'{"order_id":"A-1","status":"paid"}'
TS = 1_700_000_000
# Computed independently: printf '1700000000.{"order_id":"A-1","status":"paid"}' | openssl dgst -sha256 -hmac n3tw0rk-s3cret
KNOWN_HEX = "276ece3ab3afec78bcefffcc9de5c674a289fa23875310cdf74fd467b2575cdf"


def code_of(secret: bytes = SECRET, body: bytes = BODY, headers: dict[str, str] | None = None,
            *, now: int = TS, window: int = DEFAULT_WINDOW) -> str:
    """The SignatureError code verify() raises."""
    with pytest.raises(SignatureError) as info:
        verify(secret, body, sign(SECRET, BODY, TS) if headers is None else headers, now=now, window=window)
    return info.value.code


def with_signature(value: str) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(TS), SIGNATURE_HEADER: value}


# --- sign ------------------------------------------------------------------------------------------

def test_known_vector() -> None:
    assert sign(SECRET, BODY, TS) == {
        "X-Cashback-Timestamp": "1700000000",
        "X-Cashback-Signature": "sha256=" + KNOWN_HEX,
    }


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature_for(SECRET, BODY, TS) == expected


@pytest.mark.parametrize("timestamp", [-1, True, 1.5, "1700000000"])
def test_sign_rejects_bad_timestamp_argument(timestamp: object) -> None:
    with pytest.raises(ValueError):
        sign(SECRET, BODY, timestamp)  # type: ignore[arg-type]


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        sign(b"", BODY, TS)
    with pytest.raises(ValueError):
        verify(b"", BODY, sign(SECRET, BODY, TS), now=TS)


def test_text_secret_or_body_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        sign("secret", BODY, TS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(SECRET, BODY.decode(), TS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify(SECRET, BODY.decode(), sign(SECRET, BODY, TS), now=TS)  # type: ignore[arg-type]


# --- verify: good ----------------------------------------------------------------------------------

def test_round_trip() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, TS), now=TS) is None


def test_empty_body_round_trip() -> None:
    verify(SECRET, b"", sign(SECRET, b"", TS), now=TS)


@pytest.mark.parametrize("transform", [str.lower, str.upper, str.title, lambda name: name.swapcase()])
def test_header_names_are_case_insensitive(transform) -> None:  # type: ignore[no-untyped-def]
    headers = {transform(name): value for name, value in sign(SECRET, BODY, TS).items()}
    verify(SECRET, BODY, headers, now=TS)


def test_werkzeug_headers_object() -> None:
    headers = Headers(sign(SECRET, BODY, TS))
    headers.add(NETWORK_HEADER, "admitad")
    verify(SECRET, BODY, headers, now=TS)  # type: ignore[arg-type]


def test_uppercase_hex_prefix_and_surrounding_spaces_accepted() -> None:
    verify(SECRET, BODY, with_signature("  SHA256=" + KNOWN_HEX.upper() + " "), now=TS)
    verify(SECRET, BODY, {TIMESTAMP_HEADER: f" {TS} ", SIGNATURE_HEADER: "sha256=" + KNOWN_HEX}, now=TS)


def test_extra_headers_are_ignored() -> None:
    headers = {**sign(SECRET, BODY, TS), "Content-Type": "application/json", NETWORK_HEADER: "x"}
    verify(SECRET, BODY, headers, now=TS)


# --- verify: tampering -----------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    BODY.replace(b"paid", b"PAID"), BODY + b" ", BODY + b"\n", b" " + BODY, b"", BODY[:-1],
    b'{"status":"paid","order_id":"A-1"}',  # same JSON, other bytes: the bytes are what is signed
])
def test_tampered_body(body: bytes) -> None:
    assert code_of(body=body) == "bad_signature"


def test_tampered_timestamp() -> None:
    headers = sign(SECRET, BODY, TS)
    headers[TIMESTAMP_HEADER] = str(TS + 1)
    assert code_of(headers=headers, now=TS) == "bad_signature"


def test_leading_zero_timestamp_is_a_different_message() -> None:
    headers = sign(SECRET, BODY, TS)
    headers[TIMESTAMP_HEADER] = "0" + str(TS)
    assert code_of(headers=headers) == "bad_signature"


@pytest.mark.parametrize("secret", [b"n3tw0rk-s3creT", SECRET + b"x", SECRET[:-1], b"other"])
def test_wrong_secret(secret: bytes) -> None:
    assert code_of(secret=secret) == "bad_signature"


def test_signature_of_another_body() -> None:
    assert code_of(headers=sign(SECRET, b"{}", TS)) == "bad_signature"


def test_signature_is_checked_before_the_clock() -> None:
    """A forged old request is told bad_signature, not stale_timestamp."""
    assert code_of(secret=b"other", now=TS + 10 * DEFAULT_WINDOW) == "bad_signature"


# --- verify: window --------------------------------------------------------------------------------

@pytest.mark.parametrize("now", [TS - DEFAULT_WINDOW, TS - 1, TS, TS + 1, TS + DEFAULT_WINDOW])
def test_inside_window_accepted(now: int) -> None:
    verify(SECRET, BODY, sign(SECRET, BODY, TS), now=now)


@pytest.mark.parametrize("now", [TS - DEFAULT_WINDOW - 1, TS + DEFAULT_WINDOW + 1, TS + 86_400, 0])
def test_outside_window_rejected(now: int) -> None:
    assert code_of(now=now) == "stale_timestamp"


@pytest.mark.parametrize("window", [0, 1, 60, 3600])
def test_custom_window_edges(window: int) -> None:
    headers = sign(SECRET, BODY, TS)
    for now in (TS - window, TS + window):
        verify(SECRET, BODY, headers, now=now, window=window)
    for now in (TS - window - 1, TS + window + 1):
        assert code_of(headers=headers, now=now, window=window) == "stale_timestamp"


def test_negative_window_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        verify(SECRET, BODY, sign(SECRET, BODY, TS), now=TS, window=-1)


def test_stale_message() -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, BODY, sign(SECRET, BODY, TS), now=TS + 301)
    assert str(info.value.message) == \
        "The timestamp is 301 seconds away from the server clock; at most 300 are allowed."


# --- verify: malformed headers ---------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {TIMESTAMP_HEADER: str(TS)}, with_signature(""), with_signature("   ")])
def test_missing_signature(headers: dict[str, str]) -> None:
    assert code_of(headers=headers) == "missing_signature"


@pytest.mark.parametrize("value", [
    KNOWN_HEX,                              # no prefix
    "sha1=" + KNOWN_HEX,
    "sha256:" + KNOWN_HEX,
    "sha256=" + KNOWN_HEX[:-1],             # 63 digits
    "sha256=" + KNOWN_HEX + "0",            # 65 digits
    "sha256=" + KNOWN_HEX[:-1] + "g",       # not hex
    "sha256=" + KNOWN_HEX[:32] + "\n" + KNOWN_HEX[32:],
    "sha256= " + KNOWN_HEX,
    "sha256=" + KNOWN_HEX + ",sha256=" + KNOWN_HEX,
    "sha256=",
])
def test_bad_signature_format(value: str) -> None:
    assert code_of(headers=with_signature(value)) == "bad_signature_format"


def test_missing_timestamp() -> None:
    headers = sign(SECRET, BODY, TS)
    del headers[TIMESTAMP_HEADER]
    assert code_of(headers=headers) == "missing_timestamp"
    headers[TIMESTAMP_HEADER] = " "
    assert code_of(headers=headers) == "missing_timestamp"


@pytest.mark.parametrize("value", ["abc", "-5", "+1700000000", "1700000000.0", "1.7e9", "0x10",
                                   "1234567890123", "١٧٠٠٠٠٠٠٠٠", "17 00", "Tue, 14 Nov 2023 22:13:20 GMT"])
def test_bad_timestamp(value: str) -> None:
    headers = sign(SECRET, BODY, TS)
    headers[TIMESTAMP_HEADER] = value
    assert code_of(headers=headers) == "bad_timestamp"


def test_signature_problems_are_reported_before_timestamp_problems() -> None:
    assert code_of(headers={}) == "missing_signature"
    assert code_of(headers={SIGNATURE_HEADER: "nonsense", TIMESTAMP_HEADER: "nonsense"}) == "bad_signature_format"


def test_header_given_twice_in_different_case_is_ambiguous() -> None:
    headers = {**sign(SECRET, BODY, TS), "x-cashback-signature": "sha256=" + "0" * 64}
    assert code_of(headers=headers) == "bad_signature_format"
    headers = {**sign(SECRET, BODY, TS), "x-cashback-timestamp": str(TS)}
    assert code_of(headers=headers) == "bad_timestamp"


def test_repeated_header_in_werkzeug_headers_is_ambiguous() -> None:
    headers = Headers(sign(SECRET, BODY, TS))
    headers.add(SIGNATURE_HEADER, sign(SECRET, BODY, TS)[SIGNATURE_HEADER])
    with pytest.raises(SignatureError) as info:
        verify(SECRET, BODY, headers, now=TS)  # type: ignore[arg-type]
    assert info.value.code == "bad_signature_format"


def test_error_carries_code_and_lazy_message() -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, BODY, {}, now=TS)
    assert info.value.code == "missing_signature"
    assert isinstance(info.value.message, LazyString)
    assert str(info.value) == "missing_signature: The X-Cashback-Signature header is missing."


# --- network header --------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, expected", [
    ({NETWORK_HEADER: "admitad"}, "admitad"),
    ({"x-cashback-network": " cityads "}, "cityads"),
    ({}, None),
    ({NETWORK_HEADER: "  "}, None),
    ({NETWORK_HEADER: "a", "x-cashback-network": "b"}, None),
])
def test_network_code(headers: dict[str, str], expected: str | None) -> None:
    assert network_code(headers) == expected


# --- curl replay -----------------------------------------------------------------------------------

def parse_curl(command: str) -> tuple[str, dict[str, str], bytes]:
    """(url, headers, body) of a command produced by signed_curl, as a POSIX shell would split it."""
    argv = shlex.split(command)
    assert argv[:4] == ["curl", "-sS", "-X", "POST"]
    url, headers, body = argv[4], {}, None
    rest = iter(argv[5:])
    for option in rest:
        value = next(rest)
        if option == "-H":
            name, _, header_value = value.partition(": ")
            headers[name] = header_value
        else:
            assert option == "--data-raw"
            body = value.encode("utf-8")
    assert body is not None
    return url, headers, body


@pytest.mark.parametrize("body", [
    BODY,
    b'{"note":"it\'s \\"quoted\\" $HOME `id` \\\\ !"}',
    '{"name":"Иван","emoji":"\U0001F4B8"}'.encode("utf-8"),
    b'{\n  "multi": "line"\n}\n',
    b"@/etc/passwd",
    b"",
])
def test_signed_curl_round_trip(body: bytes) -> None:
    command = signed_curl("https://portal.example/api/v1/postback/?a=1&b=2", SECRET, body, "admitad", TS)
    url, headers, sent = parse_curl(command)
    assert url == "https://portal.example/api/v1/postback/?a=1&b=2"
    assert sent == body
    assert headers[NETWORK_HEADER] == "admitad"
    assert headers["Content-Type"] == "application/json"
    verify(SECRET, sent, headers, now=TS)


def test_signed_curl_never_contains_the_secret() -> None:
    assert SECRET.decode() not in signed_curl("http://localhost/", SECRET, BODY, "n", TS)


def test_signed_curl_defaults_to_now() -> None:
    before = int(time.time())
    _, headers, _ = parse_curl(signed_curl("http://localhost/", SECRET, BODY, "n"))
    assert before <= int(headers[TIMESTAMP_HEADER]) <= int(time.time())


@pytest.mark.parametrize("body", [b"\xff\xfe", b'{"a":"\x00"}'])
def test_signed_curl_refuses_bodies_a_shell_cannot_carry(body: bytes) -> None:
    with pytest.raises(ValueError):
        signed_curl("http://localhost/", SECRET, body, "n", TS)


def test_main_prints_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_bytes(BODY)
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    assert main(["http://localhost/pb", "admitad", str(body_file), "--timestamp", str(TS)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == signed_curl("http://localhost/pb", SECRET, BODY, "admitad", TS)


def test_main_requires_the_secret_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(SystemExit) as info:
        main(["http://localhost/pb", "admitad", str(tmp_path / "missing.json")])
    assert info.value.code == 2


# --- properties ------------------------------------------------------------------------------------

SECRETS = st.binary(min_size=1, max_size=64)
BODIES = st.binary(max_size=512)
TIMESTAMPS = st.integers(min_value=0, max_value=10**12 - 1)


@settings(max_examples=200)
@given(secret=SECRETS, body=BODIES, timestamp=TIMESTAMPS, skew=st.integers(-DEFAULT_WINDOW, DEFAULT_WINDOW))
def test_property_round_trip(secret: bytes, body: bytes, timestamp: int, skew: int) -> None:
    verify(secret, body, sign(secret, body, timestamp), now=timestamp + skew)


@settings(max_examples=200)
@given(secret=SECRETS, body=BODIES.filter(bool), timestamp=TIMESTAMPS, data=st.data())
def test_property_any_byte_change_is_detected(secret: bytes, body: bytes, timestamp: int,
                                              data: st.DataObject) -> None:
    headers = sign(secret, body, timestamp)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1:]
    with pytest.raises(SignatureError) as info:
        verify(secret, tampered, headers, now=timestamp)
    assert info.value.code == "bad_signature"


@settings(max_examples=200)
@given(secret=SECRETS, other=SECRETS, body=BODIES, timestamp=TIMESTAMPS)
def test_property_other_secret_is_rejected(secret: bytes, other: bytes, body: bytes, timestamp: int) -> None:
    # HMAC zero-pads keys to the block size, so b"k" and b"k\x00" are the same key by design.
    assume(other.rstrip(b"\x00") != secret.rstrip(b"\x00"))
    with pytest.raises(SignatureError) as info:
        verify(other, body, sign(secret, body, timestamp), now=timestamp)
    assert info.value.code == "bad_signature"
