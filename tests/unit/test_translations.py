"""Translation catalogs and the locale of each request (no services: in-memory SQLite).

* The Russian catalog covers every message the source tree marks today (extracted here, in
  memory, with ``babel.cfg``): a new ``_l("…")`` without a translation fails this file —
  run ``cashback translations update``, translate, ``cashback translations compile``.
* Placeholders survive translation; the tracked ``.mo`` says what the ``.po`` says.
* The JSON API picks ``_l_``, then ``Accept-Language``, then Russian; portal pages follow
  Flask-AppBuilder (``_l_``, session, default) but a new session takes ``Accept-Language``.
"""
from __future__ import annotations

import io
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from click.testing import CliRunner
from flask import jsonify, session

from portal import cli_i18n
from portal.app import create_app
from portal.errors import Invalid, NotFound
from portal.i18n import _, _l, select_locale

ROOT = cli_i18n.ROOT
RU_DIR = cli_i18n.TRANSLATIONS_DIR / "ru" / "LC_MESSAGES"
RU_PO = RU_DIR / "messages.po"
RU_MO = RU_DIR / "messages.mo"

#: ``%(name)s``-style placeholders (and ``%%``), as Python's ``%`` operator reads them.
PLACEHOLDER_RE = re.compile(r"%(?:\((?P<name>\w+)\))?[#0 +-]*(?:\d+|\*)?(?:\.\d+)?[diouxXeEfFgGcrsa%]")


# --- helpers -----------------------------------------------------------------------------------

def _extract(root: Path = ROOT) -> dict[tuple, list[str]]:
    """{(msgid, context): ["file:line", …]} for every message babel.cfg finds under ``root``.

    ``msgid`` is a (singular, plural) tuple for ``ngettext``; keywords as ``pybabel extract``
    gets them from ``cashback translations``.
    """
    with open(cli_i18n.MAPPING_FILE, encoding="utf-8") as fileobj:
        method_map, options_map = parse_mapping_cfg(fileobj, str(cli_i18n.MAPPING_FILE))
    keywords = {**DEFAULT_KEYWORDS, **parse_keywords(list(cli_i18n.KEYWORDS))}
    found: dict[tuple, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(root), method_map, options_map, keywords=keywords):
        found.setdefault((message, context), []).append(f"{filename}:{lineno}")
    return found


def _catalog(path: Path = RU_PO):
    with open(path, "rb") as fileobj:
        return read_po(fileobj, locale="ru")


def _as_dict(catalog) -> dict:
    """{(id, context): string} of the translated messages, header excluded."""
    return {(m.id, m.context): m.string for m in catalog if m.id}


def _placeholders(text: str) -> Counter:
    return Counter(m.group("name") or m.group(0) for m in PLACEHOLDER_RE.finditer(text))


@pytest.fixture(scope="module")
def extracted():
    return _extract()


@pytest.fixture(scope="module")
def ru_catalog():
    return _catalog()


# --- (a) the catalog is complete ---------------------------------------------------------------

def test_extraction_sees_every_source_package(extracted):
    """babel.cfg reaches portal/, plugins/ and payment_providers/ with the project's keywords."""
    files = {where.split(":")[0].split("/")[0] for refs in extracted.values() for where in refs}
    assert {"portal", "plugins", "payment_providers"} <= files
    ids = {msgid for msgid, _context in extracted}
    assert "Not found." in ids  # _l in portal/errors.py
    assert "Enter the wallet number." in ids  # _l in payment_providers/
    assert len(extracted) > 90


def test_every_source_message_has_a_russian_translation(extracted, ru_catalog):
    """Missing, empty or fuzzy entries are listed with where they come from."""
    problems = []
    for (msgid, context), where in sorted(extracted.items(), key=lambda item: str(item[0])):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        message = ru_catalog.get(key, context)
        if message is None:
            problems.append(f"missing: {msgid!r} ({', '.join(where)})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {msgid!r} ({', '.join(where)})")
        else:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if not all(s and s.strip() for s in strings):
                problems.append(f"untranslated: {msgid!r} ({', '.join(where)})")
    assert not problems, ("run `cashback translations update`, translate "
                          "portal/translations/ru/LC_MESSAGES/messages.po, then "
                          "`cashback translations compile`:\n" + "\n".join(problems))


def test_jinja_templates_are_extracted_too(tmp_path):
    """The [jinja2: portal/templates/**.html] section works (the extractor is installed)."""
    template = tmp_path / "portal" / "templates" / "cabinet" / "page.html"
    template.parent.mkdir(parents=True)
    template.write_text('<h1>{{ _("Your cashback") }}</h1><p>{{ gettext("Hello, %(name)s", name=n) }}</p>',
                        encoding="utf-8")
    found = {msgid for msgid, _context in _extract(tmp_path)}
    assert found == {"Your cashback", "Hello, %(name)s"}


# --- (b) placeholders ------------------------------------------------------------------------

def test_placeholders_match_the_message_id(ru_catalog):
    problems = []
    for message in ru_catalog:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = _placeholders(ids[0])
        for string in strings:
            if _placeholders(string) != expected:
                problems.append(f"{message.id!r}: {dict(expected)} != {dict(_placeholders(string))} "
                                f"in {string!r}")
    assert not problems, "\n".join(problems)


def test_babel_catalog_checks_pass(ru_catalog):
    """Babel's own checkers (python-format types and counts) find nothing."""
    errors = [(message.id, [str(e) for e in errs]) for message, errs in ru_catalog.check()]
    assert not errors


# --- (c) the tracked .mo is the compiled .po ---------------------------------------------------

def test_compiled_mo_matches_the_po(ru_catalog):
    compiled = io.BytesIO()
    write_mo(compiled, ru_catalog)  # what `cashback translations compile` writes (no fuzzy)
    compiled.seek(0)
    with open(RU_MO, "rb") as fileobj:
        tracked = read_mo(fileobj)
    assert _as_dict(tracked) == _as_dict(read_mo(compiled)), (
        "portal/translations/ru/LC_MESSAGES/messages.mo is stale: run `cashback translations compile`")
    assert tracked.plural_forms == ru_catalog.plural_forms


# --- the CLI -----------------------------------------------------------------------------------

def test_cli_group_has_extract_update_compile():
    result = CliRunner().invoke(cli_i18n.translations, ["--help"])
    assert result.exit_code == 0
    for name in ("extract", "update", "compile"):
        assert name in result.output


def test_update_and_compile_keep_the_translations(tmp_path, extracted):
    """`update` on today's tree adds nothing to translate; `compile` writes a loadable .mo."""
    catalog_dir = tmp_path / "ru" / "LC_MESSAGES"
    catalog_dir.mkdir(parents=True)
    shutil.copy(RU_PO, catalog_dir / "messages.po")
    assert cli_i18n.update(tmp_path, quiet=True) == ["ru"]
    template = _catalog(tmp_path / "messages.pot")
    assert {(m.id, m.context) for m in template if m.id} == set(extracted)
    updated = _catalog(catalog_dir / "messages.po")
    before = _as_dict(_catalog())
    assert {key: value for key, value in _as_dict(updated).items() if key in before} == before
    assert cli_i18n.untranslated(catalog_dir / "messages.po") == []
    assert cli_i18n.compile_catalogs(tmp_path, quiet=True) == ["ru"]
    with open(catalog_dir / "messages.mo", "rb") as fileobj:
        assert read_mo(fileobj).get("Not found.").string == "Не найдено."


def test_update_starts_a_new_locale(tmp_path):
    assert cli_i18n.update(tmp_path, ["de"], quiet=True) == ["de"]
    po_file = tmp_path / "de" / "LC_MESSAGES" / "messages.po"
    catalog = _catalog(po_file)
    assert str(catalog.locale) == "de" and catalog.get("Not found.") is not None
    assert "Not found." in cli_i18n.untranslated(po_file)


# --- (d) locale selection --------------------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True, "CASHBACK_ENV": "testing"})

    @app.get("/api/v1/_i18n_test/not-found")
    def _api_not_found():
        raise NotFound()

    @app.get("/api/v1/_i18n_test/invalid")
    def _api_invalid():
        raise Invalid(errors=[{"field": "x", "code": "required", "message": _l("This field is required.")}])

    @app.get("/api/v1/_i18n_test/lazy")
    def _api_lazy():
        return jsonify({"message": _l("Not found.")})

    @app.get("/_i18n_test/page")
    def _page():
        return {"message": _("Not found."), "session": session.get("locale")}

    return app


def _api_message(client, path="/api/v1/_i18n_test/not-found", **headers):
    response = client.get(path, headers=headers)
    assert response.status_code == 404
    return response.get_json()["error"]["message"]


@pytest.mark.parametrize(("query", "accept", "expected"), [
    ("", None, "Не найдено."),
    ("", "ru", "Не найдено."),
    ("", "en", "Not found."),
    ("", "en-US,en;q=0.9,ru;q=0.5", "Not found."),
    ("", "ru-RU,ru;q=0.9,en;q=0.8", "Не найдено."),
    ("", "de-DE,de;q=0.9", "Не найдено."),
    ("", "de, en;q=0.5", "Not found."),
    ("?_l_=en", "ru", "Not found."),
    ("?_l_=ru", "en", "Не найдено."),
    ("?_l_=xx", "en", "Not found."),  # an unsupported _l_ counts as absent
])
def test_api_locale(app, query, accept, expected):
    headers = {"Accept-Language": accept} if accept else {}
    assert _api_message(app.test_client(), "/api/v1/_i18n_test/not-found" + query, **headers) == expected


def test_api_field_errors_are_translated(app):
    client = app.test_client()
    ru = client.get("/api/v1/_i18n_test/invalid", headers={"Accept-Language": "ru"}).get_json()
    en = client.get("/api/v1/_i18n_test/invalid", headers={"Accept-Language": "en"}).get_json()
    assert ru["error"] == {"code": "invalid", "message": "Некоторые поля заполнены неверно. Пожалуйста, проверьте их."}
    assert ru["errors"] == [{"field": "x", "code": "required", "message": "Заполните это поле."}]
    assert en["error"]["message"] == "Some fields are not valid."
    assert en["errors"][0]["message"] == "This field is required."


def test_lazy_strings_serialize_in_the_request_locale(app):
    client = app.test_client()
    assert client.get("/api/v1/_i18n_test/lazy", headers={"Accept-Language": "en"}).get_json() == {
        "message": "Not found."}
    assert client.get("/api/v1/_i18n_test/lazy").get_json() == {"message": "Не найдено."}


def test_unknown_api_path_keeps_the_json_error_shape(app):
    for accept in ("ru", "en"):
        response = app.test_client().get("/api/v1/nope", headers={"Accept-Language": accept})
        body = response.get_json()
        assert response.status_code == 404
        assert set(body) == {"ok", "status", "error", "errors"}
        assert body["ok"] is False and body["error"]["code"] == "not_found"


def test_api_ignores_and_never_sets_the_session(app):
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["locale"] = "en"
    response = client.get("/api/v1/_i18n_test/not-found")
    assert response.get_json()["error"]["message"] == "Не найдено."
    assert "Set-Cookie" not in response.headers
    fresh = app.test_client().get("/api/v1/_i18n_test/not-found", headers={"Accept-Language": "en"})
    assert "Set-Cookie" not in fresh.headers


def test_portal_new_session_takes_accept_language_and_keeps_it(app):
    client = app.test_client()
    first = client.get("/_i18n_test/page", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_json()
    assert first == {"message": "Not found.", "session": "en"}
    # stored like FAB stores its default: later pages (and FAB's language menu) agree
    assert client.get("/_i18n_test/page", headers={"Accept-Language": "ru"}).get_json()["message"] == "Not found."


@pytest.mark.parametrize("accept", [None, "de", "*"])
def test_portal_default_is_russian(app, accept):
    headers = {"Accept-Language": accept} if accept else {}
    assert app.test_client().get("/_i18n_test/page", headers=headers).get_json() == {
        "message": "Не найдено.", "session": "ru"}


def test_portal_session_choice_beats_the_browser(app):
    client = app.test_client()
    assert client.get("/lang/ru").status_code == 302  # FAB's language menu
    page = client.get("/_i18n_test/page", headers={"Accept-Language": "en"}).get_json()
    assert page == {"message": "Не найдено.", "session": "ru"}
    client.get("/lang/en")
    assert client.get("/_i18n_test/page").get_json()["message"] == "Not found."


def test_portal_query_arg_overrides_for_one_request(app):
    client = app.test_client()
    client.get("/lang/ru")
    assert client.get("/_i18n_test/page?_l_=en").get_json() == {"message": "Not found.", "session": "ru"}
    assert client.get("/_i18n_test/page").get_json()["message"] == "Не найдено."


def test_portal_stale_session_locale_falls_back_to_the_browser(app):
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["locale"] = "de"
    page = client.get("/_i18n_test/page", headers={"Accept-Language": "en"}).get_json()
    assert page == {"message": "Not found.", "session": "en"}


def test_requests_inside_one_app_context_do_not_share_a_locale(app):
    """Flask-Babel caches the locale on ``g``; requests made while a test holds an app
    context share ``g``, so each request starts with a fresh choice."""
    client = app.test_client()
    with app.app_context():
        assert _api_message(client, **{"Accept-Language": "en"}) == "Not found."
        assert _api_message(client, **{"Accept-Language": "ru"}) == "Не найдено."


def test_outside_a_request_the_default_locale_applies(app):
    with app.app_context():
        assert select_locale() == "ru"
        assert str(_l("Not found.")) == "Не найдено."
    # no app at all: the English message id
    assert str(_l("Not found.")) == "Not found."
