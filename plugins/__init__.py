"""The cashback plugin SDK: everything a payout provider package may import.

A provider package implements :class:`PayoutProvider` and registers it::

    from plugins import PayoutProvider, hookimpl

    class MyProvider(PayoutProvider):
        ...

    @hookimpl
    def register_payout_providers():
        return [MyProvider]

and declares the module in its ``setup.py`` under the ``cashback.payment_providers`` entry-point
group. Test support lives in :mod:`plugins.sandbox` (local emulators) and :mod:`plugins.testing`
(the conformance kit, a pytest plugin). The core-side loader is :mod:`plugins.manager`.
"""
from plugins.handles import HandleStore, MemoryHandleStore
from plugins.hookspecs import hookimpl, hookspec
from plugins.provider import (
    CONTRACT_VERSION,
    ErrorCode,
    InvalidAccount,
    Limits,
    PayoutProvider,
    PayoutProviderError,
    PayoutRequest,
    PayoutStatus,
    PluginStartupError,
    ProviderSettings,
    Quote,
    Result,
)

__all__ = [
    "CONTRACT_VERSION",
    "ErrorCode",
    "HandleStore",
    "InvalidAccount",
    "Limits",
    "MemoryHandleStore",
    "PayoutProvider",
    "PayoutProviderError",
    "PayoutRequest",
    "PayoutStatus",
    "PluginStartupError",
    "ProviderSettings",
    "Quote",
    "Result",
    "hookimpl",
    "hookspec",
]
