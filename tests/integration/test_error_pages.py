"""Errors as pages of the portal (issue 16, point 5): the layout, the reader's language, a way back.

403 and 404 are driven in Chromium (``tests/browser/test_landing_and_navigation.py``); here the
500 of a view that fails, which needs a route made to fail, and the API, which keeps its JSON.
"""
from __future__ import annotations

import pytest

from tests.conftest import build_app

RU = {"Accept-Language": "ru"}


@pytest.fixture(scope="module")
def failing_app(pg_url):
    app = build_app(pg_url, TESTING=False, PROPAGATE_EXCEPTIONS=False)

    def boom():
        raise RuntimeError("a bug in a view")

    app.add_url_rule("/boom", "boom", boom)
    app.add_url_rule("/api/v1/boom", "api_boom", boom)
    return app


def test_a_failing_view_is_a_portal_page_in_russian(failing_app):
    response = failing_app.test_client().get("/boom", headers=RU)
    html = response.get_data(as_text=True)
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert 'id="error-page" data-status="500"' in html
    assert "Что-то пошло не так" in html and "На главную" in html and 'id="navbar"' in html
    assert "a bug in a view" not in html and "Internal Server Error" not in html


def test_unknown_page_in_english_and_the_api_keeps_json(failing_app):
    client = failing_app.test_client()
    response = client.get("/no/such/page", headers={"Accept-Language": "en"})
    assert response.status_code == 404 and "Page not found" in response.get_data(as_text=True)
    assert "To the start page" in response.get_data(as_text=True)
    api = client.get("/api/v1/boom", headers=RU)
    assert api.status_code == 500 and api.is_json and api.get_json()["error"]["code"] == "internal_error"
    assert client.get("/api/v1/no-such-thing").get_json()["error"]["code"] == "not_found"
