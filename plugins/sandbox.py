"""A reusable base for local provider sandboxes: an HTTP server on 127.0.0.1 with a ledger of
transfers, time-driven state changes and a fault-injection switchboard.

A provider's sandbox subclasses :class:`Sandbox` and implements :meth:`Sandbox.handle`: parse the
provider's real request shape, record transfers in :attr:`Sandbox.ledger`, answer in the provider's
real reply shape. Everything protocol-neutral lives here::

    with TestBankSandbox(settle_after=0.05) as sandbox:      # port 0: a free port
        provider = TestBankProvider({"base_url": sandbox.url, ...})
        sandbox.inject(drop=1)          # the next request is committed, then the socket closes
        ...
        sandbox.settle()                # pending transfers reach their planned outcome now
        assert len(sandbox.transfers()) == 1

Admin endpoints (JSON; never affected by faults)::

    GET  /__sandbox__/ledger                 {"balance": "...", "transfers": [...]}
    GET  /__sandbox__/faults                 the switchboard
    POST /__sandbox__/faults                 partial update, e.g. {"drop": 1} or {"down_for": 2}
    POST /__sandbox__/reset                  faults, ledger, balance and clock back to the start
    POST /__sandbox__/settle                 settle all pending transfers, or {"handle": "..."}
    POST /__sandbox__/advance                move the sandbox clock: {"seconds": 60}
    POST /__sandbox__/reverse/<handle>       a succeeded transfer comes back
    POST /__sandbox__/callback/<handle>      send the provider's notification: {"url": "..."}

Faults, applied to each non-admin request in this order:

* ``down``: the listening socket is closed, so clients get *connection refused* (nothing sent).
  Over HTTP use ``down_for`` (seconds), since a down sandbox cannot hear the request to come up.
* ``rate_limit`` (next N requests): 429 with ``Retry-After: retry_after``, not processed.
* ``errors`` (next N requests) with ``errors_after_commit=False``: ``error_status``, not processed.
* the request is processed (a transfer is *committed*), then the answer waits ``latency`` seconds;
* ``drop`` (next N): the socket closes without any answer;
* ``errors`` with ``errors_after_commit=True`` (the default): ``error_status`` instead of the answer;
* ``garble`` (next N): the answer's body is cut and corrupted.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Faults",
    "Ledger",
    "LedgerConflict",
    "Sandbox",
    "SandboxRequest",
    "SandboxResponse",
    "Transfer",
]

log = logging.getLogger(__name__)

PENDING, SUCCEEDED, FAILED, REVERSED = "pending", "succeeded", "failed", "reversed"
#: Error label the ledger itself uses when the balance cannot cover a transfer.
INSUFFICIENT_FUNDS = "insufficient_funds"
ADMIN_PREFIX = "/__sandbox__/"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{value!r} is not JSON serializable")


def dump_json(obj: object) -> bytes:
    """JSON bytes with Decimals as strings (``"100.00"``) and datetimes as ISO 8601."""
    return json.dumps(obj, default=_json_default, ensure_ascii=False).encode()


# --------------------------------------------------------------------------- ledger

@dataclass(frozen=True)
class Transfer:
    """One transfer as the sandbox provider sees it (a snapshot; the ledger holds the truth)."""

    #: The client-chosen handle that makes the request idempotent (key, order id, tranid).
    handle: str
    #: The provider's own id of the transfer.
    reference: str
    amount: Decimal
    currency: str
    account: str
    #: What the provider charged the sender on top of ``amount``.
    fee: Decimal
    #: ``pending``, ``succeeded``, ``failed`` or ``reversed``.
    status: str
    #: The protocol's error label when failed (or reversed), chosen by the subclass.
    error: str | None
    created_at: datetime
    updated_at: datetime
    #: Protocol-specific fields the subclass wants to keep (description, metadata, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} \
            | {"extra": dict(self.extra)}


class LedgerConflict(Exception):
    """A handle was reused with different amount, currency or account."""

    def __init__(self, existing: Transfer) -> None:
        super().__init__(f"handle {existing.handle!r} already used with different data")
        self.existing = existing


@dataclass
class _Entry:
    transfer: Transfer
    outcome: str                  # the status it settles to
    outcome_error: str | None
    created_clock: float
    reads: int = 0


class Ledger:
    """Thread-safe store of transfers and of our balance at the sandbox provider.

    A transfer is recorded ``pending`` with a planned outcome and settles to it when the sandbox
    clock passes ``settle_after`` seconds, or at the ``settle_reads``-th status read, or on
    :meth:`settle`. The balance is debited ``amount + fee`` when a transfer is recorded (unless
    it fails at once), refunded when it fails later, and credited ``amount`` when it is reversed
    (the fee stays charged).
    """

    def __init__(self, *, balance: Decimal, settle_after: float | None, settle_reads: int | None,
                 clock: Callable[[], float]) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._initial_balance = balance
        self._balance = balance
        self.settle_after = settle_after
        self.settle_reads = settle_reads
        self._clock = clock

    @property
    def balance(self) -> Decimal:
        with self._lock:
            self._advance_all()
            return self._balance

    def record(self, handle: str, *, amount: Decimal, currency: str, account: str,
               fee: Decimal = Decimal("0.00"), outcome: str = SUCCEEDED,
               error: str | None = None, immediate: bool = False,
               extra: Mapping[str, Any] | None = None) -> tuple[Transfer, bool]:
        """Record a transfer under ``handle``, or find the one already there.

        :param outcome: the status it settles to: ``succeeded``, ``failed`` (with ``error``) or
            ``pending`` (stays pending for ever).
        :param immediate: take the outcome now instead of starting ``pending``.
        :returns: ``(transfer, created)``; ``created`` is False for a replay.
        :raises LedgerConflict: the handle exists with another amount, currency or account.
        """
        if not isinstance(amount, Decimal) or not isinstance(fee, Decimal):
            raise TypeError("amounts are Decimals")
        with self._lock:
            entry = self._entries.get(handle)
            if entry is not None:
                self._advance(entry)
                old = entry.transfer
                if (old.amount, old.currency, old.account) != (amount, currency, account):
                    raise LedgerConflict(old)
                return old, False
            status = outcome if immediate else PENDING
            if outcome != FAILED and self._balance < amount + fee:
                status, outcome, error = FAILED, FAILED, INSUFFICIENT_FUNDS
            if status != FAILED:
                self._balance -= amount + fee
            now = _now()
            transfer = Transfer(handle=handle, reference=uuid.uuid4().hex[:16], amount=amount,
                                currency=currency, account=account, fee=fee, status=status,
                                error=error if status == FAILED else None, created_at=now,
                                updated_at=now, extra=MappingProxyType(dict(extra or {})))
            self._entries[handle] = _Entry(transfer, outcome, error, self._clock())
            return transfer, True

    def get(self, handle: str, *, read: bool = False) -> Transfer | None:
        """The transfer under ``handle``; ``read=True`` counts a status read (``settle_reads``)."""
        with self._lock:
            entry = self._entries.get(handle)
            if entry is None:
                return None
            if read:
                entry.reads += 1
            self._advance(entry)
            return entry.transfer

    def transfers(self) -> list[Transfer]:
        """All transfers, oldest first."""
        with self._lock:
            self._advance_all()
            return [entry.transfer for entry in self._entries.values()]

    def settle(self, handle: str | None = None) -> None:
        """Move pending transfers (all, or one) to their planned outcome now."""
        with self._lock:
            for entry in self._entries.values():
                if handle is None or entry.transfer.handle == handle:
                    self._advance(entry, force=True)

    def reverse(self, handle: str, error: str | None = None) -> Transfer:
        """A succeeded transfer comes back; ``amount`` returns to the balance.

        :raises KeyError: no such handle. :raises ValueError: it has not succeeded.
        """
        with self._lock:
            entry = self._entries[handle]
            self._advance(entry)
            if entry.transfer.status != SUCCEEDED:
                raise ValueError(f"cannot reverse a {entry.transfer.status} transfer")
            self._balance += entry.transfer.amount
            entry.transfer = dataclasses.replace(entry.transfer, status=REVERSED, error=error,
                                                 updated_at=_now())
            return entry.transfer

    def reset(self, balance: Decimal | None = None) -> None:
        """Forget every transfer and restore the initial (or given) balance."""
        with self._lock:
            self._entries.clear()
            self._balance = self._initial_balance if balance is None else balance

    def _advance_all(self) -> None:
        for entry in self._entries.values():
            self._advance(entry)

    def _advance(self, entry: _Entry, force: bool = False) -> None:
        transfer = entry.transfer
        if transfer.status != PENDING or entry.outcome == PENDING:
            return
        due = force or (
            (self.settle_after is not None
             and self._clock() >= entry.created_clock + self.settle_after)
            or (self.settle_reads is not None and entry.reads >= self.settle_reads))
        if not due:
            return
        if entry.outcome == FAILED:
            self._balance += transfer.amount + transfer.fee
        entry.transfer = dataclasses.replace(
            transfer, status=entry.outcome,
            error=entry.outcome_error if entry.outcome == FAILED else None, updated_at=_now())


# --------------------------------------------------------------------------- HTTP plumbing

@dataclass(frozen=True)
class SandboxRequest:
    """One HTTP request as the subclass's :meth:`Sandbox.handle` sees it."""

    method: str
    #: Path without the query string.
    path: str
    query: Mapping[str, list[str]]
    #: Case-insensitive: ``headers.get("idempotency-key")`` works.
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON, numbers as Decimal. :raises ValueError: not JSON."""
        return json.loads(self.body.decode("utf-8"), parse_float=Decimal)


@dataclass(frozen=True)
class SandboxResponse:
    """What :meth:`Sandbox.handle` answers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: object, headers: Mapping[str, str] | None = None
             ) -> SandboxResponse:
        return cls(status, dump_json(obj), headers=dict(headers or {}))


@dataclass(frozen=True)
class Faults:
    """The fault switchboard (see the module docstring for the order they apply in)."""

    #: Seconds every answer waits after the request was processed.
    latency: float = 0.0
    #: The next N requests answer ``error_status``.
    errors: int = 0
    error_status: int = 500
    #: Whether those requests are processed (committed) first.
    errors_after_commit: bool = True
    #: The next N requests are processed, then answered with a corrupted body.
    garble: int = 0
    #: The next N requests are processed, then the connection closes with no answer.
    drop: int = 0
    #: The next N requests answer 429 without being processed.
    rate_limit: int = 0
    #: Seconds announced in ``Retry-After`` of those 429 answers.
    retry_after: int = 1
    #: The listening socket is closed: connections are refused.
    down: bool = False


def garble(body: bytes) -> bytes:
    """Half of ``body`` followed by bytes no parser accepts."""
    return body[: len(body) // 2] + b"\xff\xfe<<garbled"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("sandbox: client %s went away: %r", client_address, exc)
        else:
            log.exception("sandbox: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: "down" really refuses

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = SandboxRequest(self.command, parts.path, parse_qs(parts.query), self.headers, body)
        sandbox = self.server.sandbox
        if parts.path.startswith(ADMIN_PREFIX):
            response: SandboxResponse | None = sandbox._admin(request)
        else:
            response = sandbox._serve(request)
        if response is None:  # drop: close the socket without a word
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (ConnectionError, TimeoutError):
            log.debug("sandbox: client went away before the answer")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("sandbox %s: " + format, self.server.sandbox.name, *args)


# --------------------------------------------------------------------------- the base class

class Sandbox:
    """Base of provider sandboxes. Subclasses set :attr:`name` and implement :meth:`handle`;
    they may override :meth:`error_response`, :meth:`rate_limited_response` and
    :meth:`build_callback` to speak the provider's real error and notification shapes.

    :param host: interface to bind; keep ``127.0.0.1``.
    :param port: 0 picks a free port (kept across down/up).
    :param balance: our starting float at the provider.
    :param settle_after: seconds after which a pending transfer settles (None: never by time).
    :param settle_reads: the N-th status read of a pending transfer sees it settled (None: off).
    :param callback_url: where :meth:`fire_callback` sends notifications by default.
    """

    name: ClassVar[str] = "sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 balance: Decimal = Decimal("100000.00"), settle_after: float | None = 0.2,
                 settle_reads: int | None = None, callback_url: str | None = None) -> None:
        self.host, self._port = host, port
        self.callback_url = callback_url
        self._clock_offset = 0.0
        self.ledger = Ledger(balance=balance, settle_after=settle_after,
                             settle_reads=settle_reads, clock=self.clock)
        self._faults = Faults()
        #: Bumped by every inject()/reset_faults(): a request takes only faults armed before it came in.
        self._faults_generation = 0
        self._faults_lock = threading.Lock()
        self._life_lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._up_timer: threading.Timer | None = None
        self._started = False

    # -- lifecycle --
    def start(self) -> Sandbox:
        """Bind and serve in a background thread. Returns self."""
        with self._life_lock:
            if not self._started:
                self._started = True
                if not self.faults.down:
                    self._listen()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        with self._life_lock:
            self._started = False
            if self._up_timer is not None:
                self._up_timer.cancel()
            self._close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve(self) -> None:
        """Start and block until Ctrl+C (for ``cashback sandbox <provider>`` and demos)."""
        self.start()
        log.warning("%s sandbox listening on %s", self.name, self.url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, stable while the sandbox is down."""
        if not self._port:
            raise RuntimeError("the sandbox has not been bound to a port yet: start() it")
        return f"http://{self.host}:{self._port}"

    def _listen(self) -> None:
        server = _Server((self.host, self._port), _Handler)
        server.sandbox = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"{self.name}-sandbox", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    # -- time --
    def clock(self) -> float:
        """The sandbox clock (monotonic seconds, moved by :meth:`advance`)."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward: time-driven settlements happen as if time passed."""
        self._clock_offset += seconds

    # -- faults --
    @property
    def faults(self) -> Faults:
        with self._faults_lock:
            return self._faults

    def inject(self, *, down_for: float | None = None, **changes: Any) -> Faults:
        """Change the switchboard (fields of :class:`Faults`); ``down_for`` = down for N seconds.

        :raises TypeError: an unknown field. :raises ValueError: a bad value.
        """
        if down_for is not None:
            changes["down"] = True
        defaults = dataclasses.asdict(Faults())
        unknown = changes.keys() - defaults.keys()
        if unknown:
            raise TypeError(f"unknown faults: {sorted(unknown)}")
        for key, value in changes.items():
            kind = type(defaults[key])
            if (kind is bool) != isinstance(value, bool):
                raise ValueError(f"bad value for {key}: {value!r}")
            value = changes[key] = kind(value)
            if value < 0 or (key == "error_status" and not 400 <= value <= 599):
                raise ValueError(f"bad value for {key}: {value!r}")
        with self._life_lock:
            # Move the listening socket first, then publish: whoever sees ``down`` False can connect.
            was_down, now_down = self.faults.down, changes.get("down", self.faults.down)
            if self._started and now_down and not was_down:
                self._close()
            elif self._started and was_down and not now_down:
                self._listen()
            with self._faults_lock:
                self._faults = dataclasses.replace(self._faults, **changes)
                self._faults_generation += 1
            if down_for is not None:
                if self._up_timer is not None:
                    self._up_timer.cancel()
                self._up_timer = threading.Timer(down_for, self.inject, kwargs={"down": False})
                self._up_timer.daemon = True
                self._up_timer.start()
            return self.faults

    def reset_faults(self) -> None:
        """All faults off (and the sandbox up again)."""
        with self._life_lock:
            if self._up_timer is not None:
                self._up_timer.cancel()
            self.inject(**dataclasses.asdict(Faults()))

    def _take(self, counter: str, *, after_commit: bool | None = None, generation: int | None = None) -> bool:
        """Consume one unit of a ``next N requests`` fault, if armed — and, with ``generation``,
        armed no later than that request came in: a slow request of a test that is over must not
        use up the faults the next test injects for its own request."""
        with self._faults_lock:
            faults = self._faults
            if generation is not None and generation != self._faults_generation:
                return False
            if getattr(faults, counter) <= 0:
                return False
            if after_commit is not None and faults.errors_after_commit != after_commit:
                return False
            self._faults = dataclasses.replace(faults, **{counter: getattr(faults, counter) - 1})
            return True

    # -- ledger shortcuts --
    def transfers(self) -> list[Transfer]:
        """Every transfer the sandbox provider holds, oldest first."""
        return self.ledger.transfers()

    def settle(self, handle: str | None = None) -> None:
        """Pending transfers (all, or one) reach their planned outcome now."""
        self.ledger.settle(handle)

    def reverse(self, handle: str, error: str | None = None) -> Transfer:
        """Simulate the provider returning a succeeded transfer (e.g. an operator reversal)."""
        return self.ledger.reverse(handle, error)

    def reset(self) -> None:
        """Faults off, ledger empty, balance and clock back to the start."""
        self.reset_faults()
        self.ledger.reset()
        self._clock_offset = 0.0

    def fire_callback(self, handle: str, url: str | None = None) -> int:
        """POST the provider's notification about ``handle`` to ``url`` (or :attr:`callback_url`).

        :returns: the receiver's HTTP status. :raises LookupError: no such transfer or no
            callback support. :raises OSError: the receiver cannot be reached.
        """
        transfer = self.ledger.get(handle)
        target = url or self.callback_url
        built = self.build_callback(transfer) if transfer is not None else None
        if built is None or not target:
            raise LookupError(f"no callback for {handle!r} (transfer, support or url missing)")
        headers, body = built
        request = urllib.request.Request(target, data=body, headers=dict(headers), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    # -- for subclasses --
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        """Serve one provider API request. Commit ledger changes before returning."""
        raise NotImplementedError

    def error_response(self, status: int) -> SandboxResponse:
        """The provider's answer for an injected 5xx."""
        return SandboxResponse.json(status, {"error": "internal_error",
                                             "message": "injected server error"})

    def rate_limited_response(self, retry_after: int) -> SandboxResponse:
        """The provider's answer for an injected rate limit."""
        return SandboxResponse.json(429, {"error": "too_many_requests"},
                                    headers={"Retry-After": str(retry_after)})

    def build_callback(self, transfer: Transfer) -> tuple[Mapping[str, str], bytes] | None:
        """The provider's notification about ``transfer`` as ``(headers, body)``; None if the
        provider sends none."""
        return None

    # -- request pipeline --
    def _serve(self, request: SandboxRequest) -> SandboxResponse | None:
        with self._faults_lock:
            faults, generation = self._faults, self._faults_generation
        if faults.down:  # a connection accepted just before going down
            return None
        if self._take("rate_limit", generation=generation):
            return self.rate_limited_response(faults.retry_after)
        if self._take("errors", after_commit=False, generation=generation):
            return self.error_response(faults.error_status)
        try:
            response = self.handle(request)
        except Exception:
            log.exception("%s sandbox failed on %s %s", self.name, request.method, request.path)
            response = SandboxResponse(500, b"sandbox bug, see the log", "text/plain")
        if faults.latency:
            time.sleep(faults.latency)
        if self._take("drop", generation=generation):
            return None
        if self._take("errors", after_commit=True, generation=generation):
            return self.error_response(faults.error_status)
        if self._take("garble", generation=generation):
            return dataclasses.replace(response, body=garble(response.body))
        return response

    def _admin(self, request: SandboxRequest) -> SandboxResponse:
        action = request.path[len(ADMIN_PREFIX):].strip("/")
        try:
            data = request.json() if request.body else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            if request.method == "GET" and action == "ledger":
                return SandboxResponse.json(200, {
                    "balance": self.ledger.balance,
                    "transfers": [t.to_json() for t in self.transfers()]})
            if request.method == "GET" and action == "faults":
                return SandboxResponse.json(200, dataclasses.asdict(self.faults))
            if request.method != "POST":
                return SandboxResponse.json(405, {"error": "method not allowed"})
            if action == "faults":
                if isinstance(data.get("latency"), Decimal):
                    data["latency"] = float(data["latency"])  # seconds, not money
                if isinstance(data.get("down_for"), Decimal):
                    data["down_for"] = float(data["down_for"])
                return SandboxResponse.json(200, dataclasses.asdict(self.inject(**data)))
            if action == "reset":
                self.reset()
                return SandboxResponse.json(200, {"ok": True})
            if action == "settle":
                self.settle(data.get("handle"))
                return SandboxResponse.json(200, {"ok": True})
            if action == "advance":
                self.advance(float(data.get("seconds")))
                return SandboxResponse.json(200, {"ok": True})
            if match := re.fullmatch(r"reverse/(.+)", action):
                return SandboxResponse.json(200, self.reverse(match.group(1), data.get("error"))
                                            .to_json())
            if match := re.fullmatch(r"callback/(.+)", action):
                return SandboxResponse.json(200, {
                    "status": self.fire_callback(match.group(1), data.get("url"))})
        except KeyError as exc:
            return SandboxResponse.json(404, {"error": f"not found: {exc}"})
        except (LookupError, TypeError, ValueError, OSError) as exc:
            return SandboxResponse.json(400, {"error": str(exc)})
        return SandboxResponse.json(404, {"error": f"unknown admin action {action!r}"})
