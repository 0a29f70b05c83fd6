"""No user-facing text outside the translation functions (no services: files only).

* Templates (``portal/templates/**/*.html``): Jinja's lexer splits each template into its
  literal data and its ``{{ … }}``/``{% … %}`` constructs; the data (a construct becomes a
  placeholder, text inside ``{% trans %}`` is skipped) is read with ``html.parser``, and any
  visible text — text content and the attributes a reader sees (``title``, ``placeholder``,
  ``alt``, ``aria-label``, an input button's ``value``) — holding a letter (Latin or Cyrillic) is a
  finding.  Markup, class names, URLs and scripts are not text.
* Python (``portal/views``, ``portal/services``, ``portal/api``): string literals with letters
  passed to ``flash()``, to a ``DomainError`` (or subclass) as its message, as
  ``default_message``, ``abort(description=…)``, a WTForms field's label, a validator's
  message (``message=`` anywhere, ``ValidationError("…")``), a menu ``label=``, a
  ``label_columns`` or ``*_LABELS`` table value or a ModelView title — without ``_()``/``_l()`` around them.

Each finding is reported as ``file:line: text`` so it can be fixed where it is.
"""
from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "portal"
TEMPLATES = PORTAL / "templates"
PYTHON_DIRS = ("views", "services", "api")

LETTER = re.compile(r"[A-Za-zА-Яа-яЁё]")
#: Stands for a ``{{ … }}`` or ``{% … %}`` construct: no letter, not whitespace.
PLACEHOLDER = "\ue000"

#: Text that is the same in every language: ISO currency codes as column headings, a file format.
ALLOWED_TEXT = frozenset({"USD", "RUB", "EUR", "CSV"})
#: Attributes a reader sees (or a screen reader reads out).
VISIBLE_ATTRIBUTES = frozenset({"title", "placeholder", "alt", "aria-label", "label"})
#: Elements whose content is not text for the reader.
NOT_TEXT = frozenset({"script", "style", "code", "pre"})


# --- templates ---------------------------------------------------------------------------------

def template_data(source: str) -> str:
    """The template's literal data, each Jinja construct replaced by a placeholder, on the
    lines it has in the source (so html.parser positions are template lines)."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    out: list[str] = []
    line = 1
    in_trans = False
    expect_tag = False
    for lineno, token, value in env.lex(source):
        if token == "whitespace":
            continue
        if token == "block_begin":
            expect_tag = True
            continue
        if expect_tag and token == "name":
            expect_tag = False
            if value in ("trans", "pluralize"):
                in_trans = True
            elif value == "endtrans":
                in_trans = False
            continue
        expect_tag = False
        if lineno > line:  # keep the source's line numbers
            out.append("\n" * (lineno - line))
            line = lineno
        if token == "data" and not in_trans:
            out.append(value)
            line += value.count("\n")
        elif token in ("variable_begin", "data"):
            out.append(PLACEHOLDER)
    return "".join(out)


class TextFinder(HTMLParser):
    """Visible text with a letter, as (line, text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self.skipping: list[str] = []

    def _check(self, raw: str) -> None:
        text = " ".join(raw.replace(PLACEHOLDER, " ").split())
        if text and LETTER.search(text) and text not in ALLOWED_TEXT:
            # the line of the first letter, not of the data's start
            line = self.getpos()[0] + raw[:LETTER.search(raw).start()].count("\n")
            self.found.append((line, text))

    def handle_starttag(self, tag, attrs):
        if tag in NOT_TEXT:
            self.skipping.append(tag)
        attrs = dict(attrs)
        for name, value in attrs.items():
            visible = name in VISIBLE_ATTRIBUTES or (
                name == "value" and tag == "input" and attrs.get("type") in ("submit", "button", "reset"))
            if visible and value:
                self._check(value)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in NOT_TEXT:
            self.skipping.pop()

    def handle_endtag(self, tag):
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()

    def handle_data(self, data):
        if not self.skipping:
            self._check(data)


def template_findings(path: Path) -> list[str]:
    finder = TextFinder()
    finder.feed(template_data(path.read_text(encoding="utf-8")))
    finder.close()
    rel = path.relative_to(ROOT)
    return [f"{rel}:{line}: {text!r}" for line, text in finder.found]


# --- Python ------------------------------------------------------------------------------------

#: Calls whose first argument is a user-facing message.
MESSAGE_CALLS = frozenset({"flash", "ValidationError", "DataRequired", "InputRequired", "StopValidation"})
#: Keyword arguments that carry user-facing text in any call.
TEXT_KEYWORDS = frozenset({"message", "default_message"})
#: Keyword arguments that carry user-facing text in some calls only (a menu entry, a field, ``abort``);
#: elsewhere ``label=``/``description=`` are technical (an audit actor, a provider's payment text).
TEXT_KEYWORDS_OF = {"label": ("add_view", "add_link", "Field"), "category_label": ("add_view", "add_link"),
                    "description": ("abort",)}
#: Class attributes that carry user-facing text.
TEXT_ATTRIBUTES = frozenset({"default_message", "list_title", "show_title", "add_title", "edit_title"})
#: What translates (or marks for translation).
TRANSLATORS = frozenset({"_", "_l", "gettext", "lazy_gettext", "ngettext", "lazy_ngettext", "pgettext"})


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def literal_text(node: ast.expr | None) -> str | None:
    """The literal text of ``node`` when it is user text not passed through a translator:
    a string, an f-string's literal parts, or either side of ``+``/``%``."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if LETTER.search(node.value) else None
    if isinstance(node, ast.JoinedStr):
        parts = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
        return parts if LETTER.search(parts) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return literal_text(node.left) or (literal_text(node.right) if isinstance(node.op, ast.Add) else None)
    if isinstance(node, ast.IfExp):
        return literal_text(node.body) or literal_text(node.orelse)
    return None


def domain_error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """``DomainError`` and every class deriving from it (by name) in the scanned modules."""
    known = {"DomainError"}
    errors_tree = ast.parse((PORTAL / "errors.py").read_text(encoding="utf-8"))
    classes = [n for tree in [errors_tree, *trees.values()] for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name not in known and any(_name(base) in known for base in cls.bases):
                known.add(cls.name)
                changed = True
    return known


def python_findings(path: Path, tree: ast.Module, errors: set[str]) -> list[str]:
    rel = path.relative_to(ROOT)
    found: list[tuple[int, str]] = []

    def check(node: ast.expr | None, lineno: int) -> None:
        text = literal_text(node)
        if text is not None:
            found.append((getattr(node, "lineno", lineno), text))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in TRANSLATORS:
                continue
            if name in MESSAGE_CALLS or name in errors:
                check(node.args[0] if node.args else None, node.lineno)
            if name.endswith("Field") and node.args:  # a WTForms field: its label
                check(node.args[0], node.lineno)
            for keyword in node.keywords:
                if keyword.arg in TEXT_KEYWORDS or any(
                        name == call or (call == "Field" and name.endswith(call))
                        for call in TEXT_KEYWORDS_OF.get(keyword.arg or "", ())):
                    check(keyword.value, node.lineno)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and t.id.endswith("_LABELS") for t in node.targets):
            for value in node.value.values:  # label tables: {"code": _l("Label")}
                check(value, node.lineno)
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    names = {t.id for t in targets if isinstance(t, ast.Name)}
                    if names & TEXT_ATTRIBUTES:
                        check(stmt.value, stmt.lineno)
                    if "label_columns" in names and isinstance(stmt.value, ast.Dict):
                        for value in stmt.value.values:
                            check(value, stmt.lineno)
    return [f"{rel}:{line}: {text!r}" for line, text in sorted(found)]


def python_files() -> list[Path]:
    return sorted(p for d in PYTHON_DIRS for p in (PORTAL / d).glob("*.py"))


# --- the tests ---------------------------------------------------------------------------------

def test_templates_have_no_hardcoded_text():
    """Every visible text in a template goes through ``_()`` or ``{% trans %}``."""
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert templates, "no templates found"
    findings = [f for path in templates for f in template_findings(path)]
    assert not findings, "Hard-coded text in templates (wrap it in {{ _('…') }}):\n" + "\n".join(findings)


def test_python_has_no_hardcoded_user_messages():
    """Messages, labels and titles in views, services and the API are marked for translation."""
    files = python_files()
    assert files, "no Python files found"
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in files}
    errors = domain_error_classes(trees)
    findings = [f for path, tree in trees.items() for f in python_findings(path, tree, errors)]
    assert not findings, "Hard-coded user-facing strings (wrap them in _() or _l()):\n" + "\n".join(findings)


# --- the scanner itself ------------------------------------------------------------------------

def template_findings_of(source: str, path: Path) -> list[str]:
    finder = TextFinder()
    finder.feed(template_data(source))
    finder.close()
    return [f"{path.name}:{line}: {text!r}" for line, text in finder.found]


@pytest.mark.parametrize(("source", "expected"), [
    ("<p>Hello</p>", ["1: 'Hello'"]),
    ("<p>{{ _('Hello') }}</p>", []),
    ("<p>\n\n  Привет {{ name }}</p>", ["3: 'Привет'"]),
    ('<input placeholder="Reason">', ["1: 'Reason'"]),
    ("<input placeholder=\"{{ _('Reason') }}\" class=\"form-control input-sm\">", []),
    ('<input type="submit" value="Go">', ["1: 'Go'"]),
    ('<button type="submit" name="decision" value="approve">{{ _("Approve") }}</button>', []),
    ('<a href="/x" class="btn btn-default">&larr; {{ _("Back") }}</a>', []),
    ("{% trans %}Hello {{ name }}{% endtrans %}", []),
    ("{% if x %} selected{% endif %}<b>x</b>", ["1: 'selected'", "1: 'x'"]),
    ('<option value="{{ c }}"{% if a == c %} selected{% endif %}>{{ c }}</option>', []),
    ("<script>var label = 'text';</script>", []),
    ("{# a comment with words #}<th>USD</th><th>#</th><td>{{ money(x, 'USD') }} &mdash;</td>", []),
    ("{% set labels = {'a': _('A')} %}<p>{{ labels['a'] }} · {{ b }}</p>", []),
])
def test_template_scanner(source, expected):
    """The template scanner flags visible literal text and only that (with its line)."""
    assert [f.split(":", 1)[1].strip() for f in template_findings_of(source, Path("probe.html"))] == expected


PY_PROBE = '''
from flask import abort, flash
from portal.errors import DomainError
from portal.i18n import _, _l
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class Refused(DomainError):
    default_message = "Refused."


class Fine(DomainError):
    default_message = _l("Fine.")


STATE_LABELS = {"sent": "Sent", "failed": _l("Failed")}


class Form:
    name = StringField("Name", validators=[DataRequired(message="Say it."), Length(max=5, message=_l("Too long."))])
    other = StringField(_l("Other"), validators=[DataRequired()])


def view(err, n):
    flash("Saved.", "success")
    flash(_("Saved %(n)s.", n=n), "success")
    flash(f"Saved {n} rows", "info")
    flash(f"#{n}: {err.message}", "danger")
    appbuilder.add_view(View, "Name", label="Menu text", category_label=_l("Menu"))
    raise Refused("Not now")


def other():
    raise Refused(_("Not now"))
    abort(404, description="Nothing here")
    raise ValueError("internal, not shown")
    Actor(label="system:worker")
    PayoutRequest(description="Cashback payout")
'''


def test_python_scanner():
    """The Python scanner flags untranslated messages, labels and validators, and only those."""
    tree = ast.parse(PY_PROBE)
    errors = domain_error_classes({Path("probe.py"): tree})
    assert {"Refused", "Fine"} <= errors
    findings = python_findings(PORTAL / "probe.py", tree, errors)
    texts = [f.split(": ", 1)[1] for f in findings]
    assert texts == ["'Refused.'", "'Sent'", "'Name'", "'Say it.'", "'Saved.'", "'Saved  rows'", "'Menu text'",
                     "'Not now'", "'Nothing here'"]
    assert all(re.match(r"portal/probe\.py:\d+: ", f) for f in findings)
