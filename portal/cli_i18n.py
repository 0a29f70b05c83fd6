"""``cashback translations …``: extract, update and compile the message catalogs.

A thin wrapper around Babel's own command line (``babel.messages.frontend``) with this
project's settings filled in, so nobody has to remember the ``pybabel`` flags::

    cashback translations update     # source → messages.pot → every <locale>/messages.po
    # … translate the new / fuzzy entries in portal/translations/ru/LC_MESSAGES/messages.po …
    cashback translations compile    # every messages.po → messages.mo (tracked in git)

``extract`` alone only rewrites ``messages.pot``.  ``update --locale xx`` starts a catalog
for a new language.  The same keyword list and ``babel.cfg`` drive the catalog test in
``tests/unit/test_translations.py``, so what the test finds is what ``update`` adds.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Sequence

import click

#: The repository root: ``babel.cfg`` patterns are relative to it.
ROOT = Path(__file__).resolve().parent.parent
MAPPING_FILE = ROOT / "babel.cfg"
TRANSLATIONS_DIR = ROOT / "portal" / "translations"
TEMPLATE_FILE = TRANSLATIONS_DIR / "messages.pot"
DOMAIN = "messages"

#: Function names whose string arguments are messages (``name:1,2`` = singular, plural).
#: ``babel.cfg`` lists them too; passing them here keeps older Babel releases, which do not
#: read keywords from the mapping file, extracting the same ids.
KEYWORDS: tuple[str, ...] = ("_", "_l", "gettext", "lazy_gettext", "ngettext:1,2",
                             "lazy_ngettext:1,2")


def _pybabel(args: Sequence[str], quiet: bool = False) -> None:
    """Run one ``pybabel`` command in-process; a non-zero result becomes a click error."""
    from babel.messages.frontend import CommandLineInterface, OptionError

    try:
        status = CommandLineInterface().run(["pybabel", *(["--quiet"] if quiet else []), *args])
    except OptionError as exc:
        raise click.ClickException(str(exc)) from exc
    if status:
        raise click.ClickException(f"pybabel {args[0]} failed (see the messages above)")


def extract(output: Path = TEMPLATE_FILE, *, quiet: bool = False) -> Path:
    """Extract every message of the source tree into the template ``output``."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    args = ["extract", f"--mapping-file={MAPPING_FILE}", f"--output-file={output}",
            "--project=cashback-backoffice", "--copyright-holder=Cashback back-office contributors",
            # file names without line numbers and a stable order: small diffs when code moves
            "--add-location=file", "--sort-output"]
    args += [f"--keyword={keyword}" for keyword in KEYWORDS]
    args.append(".")
    # locations are written relative to the input path: run from the root for "portal/…"
    with contextlib.chdir(ROOT):
        _pybabel(args, quiet)
    return output


def locales(directory: Path = TRANSLATIONS_DIR) -> list[str]:
    """The locales that have a catalog under ``directory``."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir()
                  if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file())


def update(directory: Path = TRANSLATIONS_DIR, new_locales: Iterable[str] = (), *,
           quiet: bool = False) -> list[str]:
    """Extract, then merge the template into each catalog (``new_locales`` are created).

    Obsolete messages are dropped (git keeps them); a changed message keeps its old
    translation marked fuzzy, which the compiler skips and the catalog test rejects.
    """
    template = extract(directory / "messages.pot", quiet=quiet)
    targets = sorted(set(locales(directory)) | set(new_locales))
    if not targets:
        raise click.ClickException(f"no catalogs under {directory}: pass --locale ru to start one")
    for locale in targets:
        _pybabel(["update", f"--input-file={template}", f"--output-dir={directory}",
                      f"--locale={locale}", f"--domain={DOMAIN}", "--init-missing",
                      "--ignore-obsolete", "--ignore-pot-creation-date"], quiet)
    return targets


def untranslated(po_file: Path) -> list[str]:
    """Message ids of ``po_file`` that still need a translator (empty or fuzzy)."""
    from babel.messages.pofile import read_po

    with open(po_file, "rb") as fileobj:
        catalog = read_po(fileobj)
    todo = []
    for message in catalog:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.id and (message.fuzzy or not all(strings)):
            todo.append(message.id if isinstance(message.id, str) else message.id[0])
    return todo


def compile_catalogs(directory: Path = TRANSLATIONS_DIR, *, quiet: bool = False) -> list[str]:
    """Compile every ``<locale>/LC_MESSAGES/messages.po`` under ``directory`` to ``.mo``.

    Fuzzy entries are left out (they fall back to the English message id).
    """
    found = locales(directory)
    if not found:
        raise click.ClickException(f"no catalogs under {directory}")
    _pybabel(["compile", f"--directory={directory}", f"--domain={DOMAIN}", "--statistics"], quiet)
    return found


@click.group("translations")
def translations() -> None:
    """Message catalogs: extract, update, compile (English ids, Russian first)."""


@translations.command("extract")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=TEMPLATE_FILE,
              show_default=True, help="Where to write the template.")
@click.option("--verbose", "-v", is_flag=True, help="List every file scanned.")
def extract_command(output: Path, verbose: bool) -> None:
    """Extract the messages of portal/, plugins/, payment_providers/ into messages.pot."""
    click.echo(f"template written: {extract(output, quiet=not verbose)}")


@translations.command("update")
@click.option("--locale", "-l", "new_locales", multiple=True, metavar="LOCALE",
              help="Also create/update this locale (repeatable). Default: every existing catalog.")
@click.option("--verbose", "-v", is_flag=True, help="List every file scanned.")
def update_command(new_locales: tuple[str, ...], verbose: bool) -> None:
    """Extract, then merge new and changed messages into every messages.po."""
    pending = False
    for locale in update(TRANSLATIONS_DIR, new_locales, quiet=not verbose):
        po_file = TRANSLATIONS_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        todo = untranslated(po_file)
        pending = pending or bool(todo)
        click.echo(f"{locale}: {len(todo)} message(s) to translate (empty or fuzzy) in {po_file}" if todo
                   else f"{locale}: every message is translated")
    if pending:
        click.echo("Translate them, then run `cashback translations compile`.")


@translations.command("compile")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only.")
def compile_command(quiet: bool) -> None:
    """Compile every messages.po to the messages.mo the app loads (commit both)."""
    done = compile_catalogs(TRANSLATIONS_DIR, quiet=quiet)
    click.echo(f"catalogs compiled: {', '.join(done)}")
