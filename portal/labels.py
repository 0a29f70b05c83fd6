"""What a person reads instead of a stored code: the one place for enum labels.

Every stored code a page shows — a payout's state, an order's status, a claim's reason, a
provider's code, a yes/no column — goes through a table here (messages in the catalog,
Russian first), so each code reads the same on every page::

    {{ label('payout_state', payout.state) }}     {{ provider_name(row.provider_code) }}
    {{ yes_no(customer.is_blocked) }}

FAB list and show columns use :func:`column` (``formatters_columns``).  A code no table
knows is shown as it is (a new state is visible, not hidden); the walk test
(``tests/integration/test_russian_ui.py``) fails on such a code in a Russian page.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, current_app, has_app_context

from portal.i18n import _l

__all__ = ["ENUMS", "label", "column", "provider_name", "yes_no", "init_app"]

EMPTY = "—"

#: kind → {code: label}.  The tables other modules name (``ORDER_STATUS_LABELS`` …) are these.
ENUMS: dict[str, Mapping[str, Any]] = {
    "breaker": {"closed": _l("working"), "open": _l("paused")},
}


def label(kind: str | Mapping[str, Any], code: Any) -> str:
    """The label of ``code`` in table ``kind`` (a name in :data:`ENUMS` or the table itself);
    the code itself when the table does not know it, an em dash for nothing."""
    if code is None or code == "":
        return EMPTY
    table = ENUMS[kind] if isinstance(kind, str) else kind
    return str(table.get(code, code))


def column(kind: str) -> Callable[[Any], str]:
    """A FAB ``formatters_columns`` entry showing the column's codes through table ``kind``."""
    return lambda code: label(kind, code)


def yes_no(value: Any) -> str:
    """``True`` → «да», ``False`` → «нет», ``None`` → an em dash."""
    if value is None:
        return EMPTY
    return str(_l("yes") if value else _l("no"))


def _locale() -> str:
    from portal.formatting import _locale as reader_locale

    return reader_locale()


def provider_name(code: str | None) -> str:
    """A payout provider's name in the reader's language (its plugin's ``verbose_name``); the
    code for a provider this app does not load."""
    if not code:
        return EMPTY
    provider = None
    if has_app_context():
        from portal import providers

        provider = providers.all_providers(current_app).get(code) if "payout_providers" in current_app.extensions \
            else None
    return provider.display_name(_locale()) if provider is not None else code


def init_app(app: Flask) -> None:
    """``label``, ``provider_name`` and ``yes_no`` as Jinja globals (and filters)."""
    helpers = {"label": label, "provider_name": provider_name, "yes_no": yes_no}
    app.jinja_env.globals.update(helpers)
    app.jinja_env.filters.update(helpers)
