"""QIWI Wallet: the ``qiwi`` payout provider, paying RUB to QIWI wallets through the **sinap
personal API** (reference: ``provider-protocols.md`` §2.1, §2.3, §5, §6).

**Disabled by default** (``default_enabled = False``): the Bank of Russia revoked QIWI Bank's
licence on 2024-02-21, and QIWI had already stopped issuing API tokens. The plugin stays as a
fully tested provider with a faithful sandbox; it must never be a live default.

Run the local emulator with ``python -m payment_providers.qiwi.sandbox --port 8767``; the
provider's default settings point at it (``http://127.0.0.1:8767``, token ``sandbox-token``,
wallet ``+79990000000``, webhook key ``cWl3aS1zYW5kYm94LXdlYmhvb2sta2V5``), so an unconfigured
install never reaches the live API.

Protocol [doc: QIWI-API/qiwi-wallet-personal-docs]
-------------------------------------------------
Host ``https://edge.qiwi.com``; ``Authorization: Bearer <token>``; JSON.

* Send: ``POST /sinap/api/v2/terms/99/payments`` with ``{"id": "<our id>", "sum": {"amount":
  100.0, "currency": "643"}, "paymentMethod": {"type": "Account", "accountId": "643"},
  "fields": {"account": "+79161234567"}, "comment": "..."}``. ``id`` (at most 20 digits,
  unique and increasing) is our handle: ``self.handles.number_for("qiwi", key)`` (+ ``id_base``),
  durable before the call. The answer ``PaymentInfo`` only ever says ``transaction.state.code =
  "Accepted"`` -> ``accepted``; ``transaction.id`` is QIWI's ``txnId`` (provider reference).
* Outcome: ``GET /payment-history/v2/persons/{wallet}/payments?rows=50&operation=OUT&startDate
  &endDate`` (at most 90 days; paging by ``nextTxnId`` + ``nextTxnDate``), item whose
  ``trmTxnId`` is our id: ``WAITING`` -> pending, ``SUCCESS`` -> succeeded (``sum.amount``,
  ``commission.amount`` as the fee), ``ERROR`` + ``errorCode`` -> the table below. No item ->
  unknown / not_found (resubmitting under the same key reuses the same id: pays at most once).
* Webhook: ``{"messageId", "hookId", "payment": {"txnId", "type", "status", "errorCode",
  "account", "comment", "sum", ..., "signFields"}, "hash", "test", "version"}``; ``hash`` =
  HMAC-SHA256 (hex) of the ``signFields`` values joined with ``|``, keyed with the base64-decoded
  hook key [doc]. ``parse_callback`` verifies it and returns the key, which it reads from the
  payment ``comment`` (we send ``"<description> [<key>]"``; the notification has QIWI's
  ``txnId``, not our id). It is only a hint: the engine then calls ``status()``.

Mapping to the contract
-----------------------
==================================  ============================================================
QIWI answer                         normalized result
==================================  ============================================================
200 ``Accepted``                    accepted (poll ``status()``)
history ``WAITING`` / ``SUCCESS``   pending / succeeded
``ERROR`` / ``QWPRC-<n>``           by code (every documented code, ``client.ERROR_CODES``):
                                    3 202 300 749 750 8 271 500 -> failed_retryable /
                                    provider_unavailable; 4 5 303 -> invalid_account;
                                    57 167 -> identification_required; 131, 797 -> declined;
                                    166 319 204 461 901 -> config (pauses the provider);
                                    220 472 407 455 -> insufficient_funds; 241 254 ->
                                    amount_too_small; 242 558 -> amount_too_large;
                                    408 -> duplicate_conflict; 700 704 705 711 716 717 757 943
                                    1050 -> sender_limit; 702 710 746 747 852 -> recipient_limit;
                                    522 547 548 561 7000 7600 -> rejected_by_recipient;
                                    any other code -> failed_final / declined
400 without QWPRC, 403, 404         failed_retryable / config (pauses the provider)
401                                 failed_retryable / auth (pauses the provider)
423 (too many / unavailable)        unknown / rate_limited (reference §5: not a refusal)
429                                 failed_retryable / rate_limited
5xx, timeout, dropped, garbled      unknown: resolve with ``status()`` (same id)
connection refused                  failed_retryable / provider_unavailable (nothing sent)
==================================  ============================================================

In ``status()`` every transport failure and HTTP refusal is ``unknown`` with the same code.

Wallets
-------
A QIWI wallet id is the owner's phone number; we accept Russian mobile numbers only, normalized
to E.164 ``+79XXXXXXXXX`` by :func:`payment_providers.phones.operators.normalize_mobile`
(reason codes ``empty``, ``characters``, ``format``, ``country``, ``not_mobile``, ``invalid``).

Magic wallets (sandbox)
-----------------------
``+7999000XXXX`` forces QIWI error XXXX (e.g. ``+79990000220`` -> 220 insufficient funds,
``+79990000004`` -> 4, ``+79990000702`` -> 702, ``+79990001050`` -> 1050). Codes in
``sandbox.SYNC_CODES`` come back at once as ``QWPRC-<n>``; the others as history ``ERROR`` once
the payment settles. ``+79990009401`` -> HTTP 401, ``+79990009403`` -> HTTP 403,
``+79990009999`` stays ``WAITING``. Every other valid number succeeds.

Behind configuration ([?] = not verified in the stored material)
---------------------------------------------------------------
* ``base_url``, ``credentials`` (``token``, ``wallet`` = our sender wallet, ``webhook_key`` =
  base64 key from ``GET /payment-notifier/v1/hooks/{hookId}/key``).
* ``id_base`` (default 0): added to the handle-store number; QIWI wants increasing ids [doc],
  whether it enforces growth is [?].
* ``history_days`` (89, at most 90), ``history_pages`` (5), ``history_rows`` (50): how far
  ``status()`` searches the history.
* ``history_budget_per_minute`` (100, 7..``history_limit_per_minute``, QIWI's 100 [doc]; only a
  sandbox run at another scale raises that limit): history calls per wallet in any 60 seconds, shared
  by every worker on every host through the handle store (``take``); QIWI blocks the wallet's
  history for five minutes after more than 100 a minute [doc]. Counted in fixed 10-second windows
  of ``budget // 7`` calls (any 60 seconds overlap at most 7 windows, so a burst across a window
  boundary stays within the budget; 100 → 14 a window, 84 a minute steady). Each history page is
  one call; when the window's budget is spent ``status()`` answers ``unknown``/``rate_limited``
  with ``retry_after`` = until the next window, without calling QIWI (never failed, never
  resubmitted).
* ``fee_percent`` / ``fee_fixed`` (default 0): ``quote()`` uses them; ``onlineCommission`` is not
  called. ``provider_id`` (default 99).
* Not configurable but unverified [?]: the reply to a reused ``id`` (same data: the same
  ``PaymentInfo``; other data: ``QWPRC-408``), the HTTP status of ``QWPRC`` errors (400), the
  shape of general errors (``serviceName``/``errorCode``/``userMessage``), which codes the
  payment call refuses at once versus in the history, ``trmTxnId`` being a string, the error
  texts, provider ids 1/2/3, the 5-minute block after 100 history calls a minute (doc says
  so; the sandbox emulates it), and a ``Retry-After`` header (read when present).
* There is no "returned" state in the history: the provider never reports ``reversed``
  (797 "cancelled, money returned" is failed_final / declined). ``supports_balance`` is False.
"""
