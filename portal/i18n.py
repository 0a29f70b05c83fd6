"""Translation helpers and the locale of each request.

Message ids are English; Russian lives in ``portal/translations/ru`` (workflow:
``cashback translations update``, translate, ``cashback translations compile``).

Services mark user-facing text with ``_l`` (lazy) so the text is rendered in the
requester's locale when it is shown, not when the module is imported.  ``_`` translates
at once and needs a request (or app) context.

The locale of a request (:func:`select_locale`, installed by :func:`init_app`):

* JSON API (``/api/…``): the ``_l_`` query argument, else the best ``Accept-Language``
  match among ``LANGUAGES``, else ``BABEL_DEFAULT_LOCALE`` (ru).  The session is neither
  read nor written: API answers do not depend on, or set, a cookie.
* Portal pages: Flask-AppBuilder's rule — ``_l_``, else ``session["locale"]`` (set by
  the language menu, ``/lang/<locale>``), else the default — except that a session
  without a locale takes the browser's ``Accept-Language`` first; the choice is stored
  in the session, as FAB does, so its language menu shows the right flag.

An unsupported ``_l_`` value (``?_l_=de``) counts as absent, in both cases.
"""
from __future__ import annotations

from flask import Flask, current_app, has_request_context, request, session
from flask_babel import get_babel, gettext as _, lazy_gettext as _l, refresh

__all__ = ["_", "_l", "init_app", "select_locale", "API_PREFIX", "LOCALE_ARG"]

#: Requests under this path are the JSON API.
API_PREFIX = "/api/"
#: The query argument FAB uses to force a locale for one request.
LOCALE_ARG = "_l_"


def _supported(value: str | None) -> str | None:
    """``value`` as one of the configured languages (``EN``, ``en-GB``, ``en_US`` → ``en``)."""
    if not value:
        return None
    languages = current_app.config["LANGUAGES"]
    tag = value.strip().replace("_", "-").lower()
    for candidate in (tag, tag.split("-", 1)[0]):
        if candidate in languages:
            return candidate
    return None


def _from_header() -> str | None:
    return request.accept_languages.best_match(list(current_app.config["LANGUAGES"]))


def select_locale() -> str:
    """The locale code of the current request (see the module docstring)."""
    default = current_app.config["BABEL_DEFAULT_LOCALE"]
    if not has_request_context():
        return default
    forced = _supported(request.args.get(LOCALE_ARG))
    if forced:
        return forced
    if request.path.startswith(API_PREFIX):
        return _from_header() or default
    stored = _supported(session.get("locale"))
    if stored:
        return stored
    chosen = _from_header() or default
    session["locale"] = chosen
    return chosen


def init_app(app: Flask) -> None:
    """Install :func:`select_locale` in place of FAB's selector.

    Call after ``AppBuilder.init_app``: FAB's ``BabelManager`` creates the Flask-Babel
    configuration (and prepends FAB's own catalogs to ``BABEL_TRANSLATION_DIRECTORIES``),
    and there is no setting to give it another selector, so the selector is replaced in
    that configuration.
    """
    if "babel" not in app.extensions:
        raise RuntimeError("portal.i18n.init_app must run after AppBuilder.init_app")
    get_babel(app).locale_selector = select_locale
    # Flask-Babel caches the locale on ``g``; a test that holds an app context across
    # requests shares ``g`` between them.  Start each request with a fresh choice.
    app.before_request(refresh)
