"""Mobile top-ups: the ``mts``, ``megafon`` and ``beeline`` payout providers.

No operator publishes a payout API; the documented business route is YooKassa's *mass payout*
protocol (``makeDeposition`` with ``dstAccount=79…``; YooKassa routes to the operator by number).
The three providers are thin subclasses of one :class:`~.provider.PhoneProvider` over one shared
:class:`~.client.PhoneClient`. Reference: ``/work/shared/reference/provider-protocols.md`` §1.2, §4.

Protocol
--------
``POST {base_url}/webservice/deposition/api/makeDeposition`` (live base
``https://payouts.yookassa.ru:9094``), ``Content-Type: application/pkcs7-mime``; the body is a
*signed* XML document::

    <makeDepositionRequest agentId="…" clientOrderId="…" requestDT="2026-11-25T07:30:00.000+00:00"
        dstAccount="79161234567" amount="100.00" currency="643" contract="Cashback payout">
      <paymentParams><pof_offerAccepted>1</pof_offerAccepted></paymentParams>
    </makeDepositionRequest>

The answer is a signed ``<makeDepositionResponse status="0|1|3" error="…" processedDT="…"
clientOrderId="…" techMessage="…"/>``: 0 success, 1 in progress, 3 rejected with ``error``.
**Status check = repeat the identical request** with the same ``clientOrderId`` (``status()``
therefore needs the original request). The same ``clientOrderId`` with other data is error 26.
``balanceRequest`` at ``…/balance`` gives our payout balance. After a success YooKassa may POST a
signed ``errorDepositionNotification`` (operator rejected 31 / returned 110, or 105): the
provider's ``parse_callback`` verifies it, remembers it, and ``status()`` then says ``reversed``.
The web layer must acknowledge the notification in the protocol's shape.

Mapping (``client.ERROR_CODES``; reference §5): 0 succeeded; 1 pending; transport failures as
in the SDK (refused before sending -> failed_retryable/provider_unavailable, timeout/5xx/garbled
-> unknown); 3 + error: 16/40/42 invalid_account, 41 account_blocked, 43/201 recipient_limit,
46 amount_too_small, 31/48 rejected_by_recipient, 105 (and undocumented codes) declined,
26 duplicate_conflict — all final; 10/14/15/17/18/19 request bugs final + ``config`` (pauses the
provider); 11/12/21 config and 50/51/53/55 auth (retryable, pause); 30 provider_unavailable,
44 sender_limit, 45 insufficient_funds (retryable with a new key); 110 reversed.

The signed wrapper is pluggable (:class:`~.client.Signer`): the ``signer`` setting is ``"test"``
(:class:`~.client.TestSigner`, an HMAC-signed JSON envelope naming a certificate — sandbox only)
or ``"module:factory"`` returning a real PKCS#7 signer (client certificate CN ``/business/<name>``,
verification of YooKassa's ``deposit.cer``; TLS with the same client certificate). No PKCS#7
signer ships here.

Accounts
--------
Russian mobile numbers, normalized to E.164 ``+79XXXXXXXXX`` (``operators.normalize_mobile``);
sent as ``79XXXXXXXXX``. Numbers are portable, so the operator the customer picked is a hint;
a mismatch comes back from the service as ``invalid_account``.

Sandbox (``python -m payment_providers.phones.sandbox``) and magic numbers
--------------------------------------------------------------------------
* ``+7 999 000 CCCC`` (dstAccount ``7999000CCCC``) forces documented error ``CCCC``: request-level
  codes (10–19, 21, 26, 30, 50–55) at once and unrecorded; 31/48/110 after "in progress";
  the others at once. E.g. ``+79990000042`` invalid_account, ``+79990000041`` account_blocked,
  ``+79990000043`` recipient_limit, ``+79990000031`` rejected_by_recipient, ``+79990000105``
  declined, ``+79990000045`` insufficient_funds, ``+79990000044`` sender_limit,
  ``+79990000055`` auth, ``+79990000021`` config.
* ``+79990000001`` stays in progress for ever.
* Ported numbers (``sandbox.PORTED``): ``+79161112233`` now MegaFon, ``+79031112233`` now MTS,
  ``+79261112233`` now Beeline: a top-up through another operator's gateway gets error 42.
* The sandbox learns the customer's operator from the ``agentId`` (one gateway per operator:
  250001 mts, 250002 megafon, 250003 beeline).

Behind configuration (unverified [?] or per contract)
-----------------------------------------------------
``agent_id``, ``contract``, ``currency_code`` (643 live / 10643 test gateway),
``client_order_id`` (``key``: our idempotency key as a string, as the SDK does; ``digest``: a
positive integer, as the doc recommends), ``min_amount``/``max_amount`` (no phone payout limits
are documented; default 1.00–15 000.00), ``fee_rate`` (tariff per contract; default 0),
``signer`` and certificate credentials, timeouts. Unverified: the exact element names of the
notification (``errorDepositionNotificationRequest``) and its acknowledgement; what a repeat of a
reversed order answers (the sandbox answers 3/110); the meaning of error 47; which code the service
gives for a missing ``pof_offerAccepted`` (the sandbox says 10).
"""
