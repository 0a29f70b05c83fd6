"""Every hook of the ``cashback`` plugin system, with its contract.

Plugins implement hooks with ``@hookimpl`` (imported from :mod:`plugins`) on module-level
functions or methods named exactly like the specs below; a misspelled name fails startup
(``pm.check_pending()``). An implementation may accept fewer arguments than the spec lists.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from plugins.provider import PayoutProvider

__all__ = ["hookimpl", "hookspec"]

#: Marks hook specifications (this module only).
hookspec = pluggy.HookspecMarker("cashback")
#: Marks hook implementations in plugins.
hookimpl = pluggy.HookimplMarker("cashback")


# --------------------------------------------------------------------------- payout providers

@hookspec
def register_payout_providers() -> list[type[PayoutProvider]]:
    """Return the payout provider classes this plugin contributes.

    Called once per process at startup, in the web process and in every worker, by
    ``plugins.manager.collect_providers``; the classes are then validated (unique ``code``,
    required attributes, compatible ``contract_version``) and instantiated with their settings.
    Any problem stops the process with ``PluginStartupError`` naming the plugin.

    Not ``firstresult``: the lists of all plugins are merged.

    :returns: a list of :class:`~plugins.provider.PayoutProvider` subclasses (classes, not
        instances); an empty list or None contributes nothing.

    The implementation must not do I/O (no network, no database, no reading settings): return
    the classes and let the manager build them.
    """


# --------------------------------------------------------------------------- notifications

@hookspec
def payout_status_changed(payout_id: int, provider_code: str, old: str, new: str) -> None:
    """A payout moved from state ``old`` to state ``new``.

    Called in the worker (or the web process, for transitions made there, e.g. finance
    rejecting a payout) **after** the transaction that made the transition has committed, once
    per transition; a transition that was already done (an idempotent replay) is not announced
    again. It is the extension point for side effects outside our database: a Telegram/e-mail
    notice to the customer, metrics, an alert on ``unknown``.

    Not ``firstresult``: every implementation is called; return values are ignored.

    :param payout_id: primary key of the payout (read it again if you need more than the states).
    :param provider_code: ``code`` of the provider the payout goes through.
    :param old: the previous payout state (``approved``, ``submitting``, ...).
    :param new: the new payout state (``succeeded``, ``failed``, ``unknown``, ...).

    The implementation must return quickly and must not raise (an exception is logged and
    swallowed by the caller, it cannot undo the committed transition), must not change the
    payout or the ledger, and must not call the provider: enqueue a job for anything slow.
    """
