"""Static files under fingerprinted names, cached for a year.

Flask serves ``/static/…`` (the portal's ``portal/static``) and FAB's ``/static/appbuilder/…``
with ``Cache-Control: no-cache``: every page load asked again for each of the ~20 stylesheets,
scripts and fonts (a 304 each).  Here every static folder gets a fingerprint — a digest of all
its files' names and contents, taken once per process — and templates link its files as
``/assets/<source>/<fingerprint>/<file>``, served with ``Cache-Control: public,
max-age=31536000, immutable``: a warm page asks for none of them.  One fingerprint per folder
(not per file) keeps relative references inside stylesheets (FAB's fonts: ``../webfonts/…``)
under the same long-cached prefix.

A changed file changes its folder's fingerprint, so a new deployment's pages link new URLs;
an old fingerprint (a page cached before the deployment) is redirected to the current one,
never answered with new content under an old, "immutable" name.  Restart the process after
changing a static file (the fingerprint is taken at start).

Templates keep writing ``url_for('static', filename=…)`` and ``url_for('appbuilder.static',
filename=…)`` (FAB's own templates do): :func:`init_app` puts a ``url_for`` in front of Flask's
for templates that builds the fingerprinted URL for those two endpoints.  The plain
``/static/…`` URLs keep working; ``ASSET_FINGERPRINTS = False`` in the app's config links them
again (the browser test measures the pages both ways in one run).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, redirect, send_from_directory, url_for

#: A year: the longest ``max-age`` caches honour; the name changes when the content does.
MAX_AGE = 365 * 24 * 3600
EXTENSION = "portal_assets"
#: Endpoint -> the name of its folder in asset URLs.
STATIC_ENDPOINTS = {"static": "portal", "appbuilder.static": "appbuilder"}

blueprint = Blueprint("assets", __name__)


@functools.lru_cache(maxsize=None)
def fingerprint(folder: str) -> str:
    """12 hex digits of a SHA-256 over every file's relative path and bytes (sorted)."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _folders(app: Flask) -> dict[str, str]:
    folders = {"portal": app.static_folder}
    fab = app.blueprints.get("appbuilder")
    if fab is not None and fab.static_folder:
        folders["appbuilder"] = fab.static_folder
    return {name: folder for name, folder in folders.items() if folder and Path(folder).is_dir()}


@blueprint.route("/assets/<source>/<digest>/<path:filename>")
def serve(source: str, digest: str, filename: str):
    folders = current_app.extensions[EXTENSION]
    folder = folders.get(source)
    if folder is None:
        abort(404)
    current = fingerprint(folder)
    if digest != current:  # a page from before a deployment: the file as it is now, under its new name
        response = redirect(url_for("assets.serve", source=source, digest=current, filename=filename))
        response.headers["Cache-Control"] = "no-cache"
        return response
    response = send_from_directory(folder, filename, max_age=MAX_AGE)
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}, immutable"
    return response


def asset_url(endpoint: str, filename: str, **values) -> str | None:
    """The fingerprinted URL of a static file, or None when ``endpoint`` is not a static folder of ours."""
    source = STATIC_ENDPOINTS.get(endpoint)
    folder = current_app.extensions[EXTENSION].get(source) if source else None
    if folder is None:
        return None
    return url_for("assets.serve", source=source, digest=fingerprint(folder), filename=filename, **values)


def init_app(app: Flask) -> None:
    """Call after the views are registered (FAB's static blueprint must exist)."""
    app.extensions[EXTENSION] = _folders(app)
    for folder in app.extensions[EXTENSION].values():
        fingerprint(folder)  # at start, not on the first page
    app.register_blueprint(blueprint)
    flask_url_for = app.jinja_env.globals["url_for"]

    def template_url_for(endpoint: str, **values):
        if endpoint in STATIC_ENDPOINTS and "filename" in values and current_app.config.get("ASSET_FINGERPRINTS", True):
            url = asset_url(endpoint, **values)
            if url is not None:
                return url
        return flask_url_for(endpoint, **values)

    app.jinja_env.globals["url_for"] = template_url_for
