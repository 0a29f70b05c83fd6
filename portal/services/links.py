"""AliExpress product-link checker.

Customers paste a link to a product; cashback is tracked per product id. This module turns whatever
they paste into a :class:`ProductLink` (the product id and one canonical URL) or raises
:class:`LinkError` with a stable ``code`` and a translatable message that tells them what to do.

Rules, in the order they are applied (see :func:`check_link`):

* the input is stripped of surrounding whitespace (including zero-width characters); an empty input
  is ``empty``, more than :data:`MAX_LINK_LENGTH` characters is ``too_long``;
* control, format and whitespace characters inside the link and backslashes are ``malformed``
  (browsers treat ``\\`` as ``/``, which is a classic way to smuggle a different host past a parser);
* only ``http`` and ``https`` are accepted (``bad_scheme`` otherwise); a link without a scheme is
  read as ``https://``;
* the host must be exactly one of :data:`ALLOWED_DOMAINS` or end with ``"." + domain``; credentials
  (``user@host``), IP addresses, non-ASCII or punycode (``xn--``) hosts and non-default ports are
  ``not_aliexpress``;
* the path must be one of the product-page forms (:data:`PRODUCT_PATHS`) with a 6–20 digit product id,
  otherwise ``not_product``;
* short links (:data:`SHORT_LINK_HOSTS`) are followed by an injectable resolver; with no resolver
  (outbound HTTP off) they are ``short_link_unavailable``. :class:`HttpShortLinkResolver` follows at
  most five redirects by hand and checks every hop's host *before* requesting it.

Pure Python: no Flask application and no database are needed (messages are lazy strings).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Final, NamedTuple, Protocol
from urllib.parse import SplitResult, urljoin, urlsplit

import requests

from portal.i18n import _l

__all__ = [
    "ALLOWED_DOMAINS",
    "CANONICAL_URL_TEMPLATE",
    "EXAMPLE_PRODUCT_URL",
    "HttpGet",
    "HttpShortLinkResolver",
    "LinkError",
    "LinkErrorCode",
    "MAX_LINK_LENGTH",
    "ProductLink",
    "SHORT_LINK_HOSTS",
    "ShortLinkResolver",
    "check_link",
    "requests_http_get",
]

ALLOWED_DOMAINS: Final[tuple[str, ...]] = ("aliexpress.com", "aliexpress.ru", "aliexpress.us")
"""Registrable domains we accept: the host equals one of them or is a subdomain of one."""

SHORT_LINK_HOSTS: Final[frozenset[str]] = frozenset(
    {"s.click.aliexpress.com", "click.aliexpress.com", "a.aliexpress.com"}
)
"""Hosts of AliExpress short (affiliate/share) links: they carry no product id, only a redirect."""

CANONICAL_URL_TEMPLATE: Final[str] = "https://{site}/item/{product_id}.html"
"""The one URL of a product: on the customer's own AliExpress site (``aliexpress.ru`` stays ``.ru``),
without subdomains, path variants or query."""
EXAMPLE_PRODUCT_URL: Final[str] = "https://aliexpress.com/item/1005001234567890.html"

MAX_LINK_LENGTH: Final[int] = 2048
"""Longest pasted link we look at (characters, after stripping surrounding whitespace)."""

MAX_HOP_URL_LENGTH: Final[int] = 8192
"""Longest redirect target we accept while resolving a short link (tracking URLs can be long)."""

PRODUCT_ID_MIN_DIGITS: Final[int] = 6
PRODUCT_ID_MAX_DIGITS: Final[int] = 20

_ID = r"(?P<id>[0-9]+)"
PRODUCT_PATHS: Final[tuple[re.Pattern[str], ...]] = tuple(
    re.compile(pattern, re.ASCII | re.IGNORECASE)
    for pattern in (
        rf"/item/{_ID}\.html",  # /item/1005001234567890.html (all hosts, m. included)
        rf"/item/[^/]+/{_ID}\.html",  # /item/<slug>/1005001234567890.html
        rf"/i/{_ID}\.html",  # /i/1005001234567890.html
        rf"/s/item/{_ID}\.html",  # old mobile site: m.aliexpress.com/s/item/<id>.html
        rf"/store/product/[^/]+/[0-9]+_{_ID}\.html",  # /store/product/<name>/<store>_<id>.html
    )
)
"""Product-page path forms (matched against the whole, undecoded path, case-insensitively)."""

_ZERO_WIDTH: Final[str] = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
_EDGE_JUNK: Final[str] = "".join(char for char in map(chr, range(0x3001)) if char.isspace()) + _ZERO_WIDTH
"""Stripped from both ends of a pasted link: all Unicode whitespace and zero-width marks/BOM."""
_SCHEME_RE: Final[re.Pattern[str]] = re.compile(
    r"([a-z][a-z0-9+.-]*):(.*)", re.ASCII | re.IGNORECASE | re.DOTALL
)
_LABEL_RE: Final[re.Pattern[str]] = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_PORT_RE: Final[re.Pattern[str]] = re.compile(r"[0-9]{1,5}", re.ASCII)
_DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443}
_REDIRECT_STATUSES: Final[frozenset[int]] = frozenset({301, 302, 303, 307, 308})
_USER_AGENT: Final[str] = "cashback-backoffice-link-checker/1.0"


class LinkErrorCode(StrEnum):
    """Why a link was rejected. Values are stable: the API returns them and clients switch on them."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    BAD_SCHEME = "bad_scheme"
    NOT_ALIEXPRESS = "not_aliexpress"
    NOT_PRODUCT = "not_product"
    MALFORMED = "malformed"
    SHORT_LINK_UNAVAILABLE = "short_link_unavailable"
    SHORT_LINK_OFFSITE = "short_link_offsite"
    SHORT_LINK_LOOP = "short_link_loop"


_MESSAGES: Final = {
    LinkErrorCode.EMPTY: _l(
        "The link is empty. Paste a link to a product page on AliExpress, for example %(example)s",
        example=EXAMPLE_PRODUCT_URL,
    ),
    LinkErrorCode.TOO_LONG: _l(
        "The link is too long (more than %(limit)s characters). Paste only the address of the product"
        " page on AliExpress, for example %(example)s",
        limit=MAX_LINK_LENGTH,
        example=EXAMPLE_PRODUCT_URL,
    ),
    LinkErrorCode.BAD_SCHEME: _l(
        "Only web links that start with http:// or https:// are accepted. Paste a link to a product"
        " page on AliExpress, for example %(example)s",
        example=EXAMPLE_PRODUCT_URL,
    ),
    LinkErrorCode.NOT_ALIEXPRESS: _l(
        "This is not an AliExpress link: we accept only links to aliexpress.com, aliexpress.ru and"
        " aliexpress.us. Paste a link to a product page on AliExpress, for example %(example)s",
        example=EXAMPLE_PRODUCT_URL,
    ),
    LinkErrorCode.NOT_PRODUCT: _l(
        "This AliExpress link does not lead to a product. Open the product page (not a store, search,"
        " category or cart page) and paste its link, for example %(example)s",
        example=EXAMPLE_PRODUCT_URL,
    ),
    LinkErrorCode.MALFORMED: _l(
        "This does not look like a link. Copy the address of the product page from your browser or the"
        " AliExpress app and paste it here, for example %(example)s",
        example=EXAMPLE_PRODUCT_URL,
    ),
    LinkErrorCode.SHORT_LINK_UNAVAILABLE: _l(
        "We cannot resolve this short link right now. Open it in your browser and paste the full"
        " product link."
    ),
    LinkErrorCode.SHORT_LINK_OFFSITE: _l(
        "This short link leads outside AliExpress, so we cannot accept it. Open the product on"
        " AliExpress and paste the full product link."
    ),
    LinkErrorCode.SHORT_LINK_LOOP: _l(
        "This short link redirects too many times. Open it in your browser and paste the full product"
        " link."
    ),
}


class LinkError(Exception):
    """A pasted link was rejected.

    ``code`` is a :class:`LinkErrorCode` (a ``str``); ``message`` is a lazy translatable string that is
    rendered in the requester's locale when converted with ``str()`` (English outside a request).
    """

    def __init__(self, code: LinkErrorCode) -> None:
        super().__init__(code)
        self.code: LinkErrorCode = code
        self.message = _MESSAGES[code]

    def __str__(self) -> str:
        return str(self.message)

    def __repr__(self) -> str:
        return f"LinkError({self.code.value!r})"


@dataclass(frozen=True, slots=True)
class ProductLink:
    """An accepted AliExpress product: its id and the one URL we store and show for it."""

    product_id: str
    canonical_url: str

    @classmethod
    def from_product_id(cls, product_id: str, site: str = ALLOWED_DOMAINS[0]) -> ProductLink:
        """Build the link for a product id that has already been validated, on ``site`` (one of
        :data:`ALLOWED_DOMAINS`: the regional site the customer's link was on)."""
        return cls(product_id=product_id,
                   canonical_url=CANONICAL_URL_TEMPLATE.format(site=site, product_id=product_id))


class ShortLinkResolver(Protocol):
    """Follows a short link and returns the URL it finally leads to.

    Implementations raise :class:`LinkError` (``short_link_*`` codes) when they cannot; the returned
    URL is checked by :func:`check_link` with the same rules as a pasted link.
    """

    def __call__(self, url: str) -> str: ...


HttpGet = Callable[[str], tuple[int, str | None]]
"""``http_get(url) -> (status_code, Location header or None)``; must not follow redirects itself."""


class _ParsedUrl(NamedTuple):
    """The parts of a validated AliExpress URL that the checker needs."""

    host: str
    path: str


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------


def check_link(raw: str, *, resolver: ShortLinkResolver | None = None) -> ProductLink:
    """Validate a pasted AliExpress product link and return its product id and canonical URL.

    ``resolver`` follows short links (``s.click.aliexpress.com/e/...`` and the like); pass ``None``
    when outbound HTTP is off, and short links are then rejected with ``short_link_unavailable``.
    Raises :class:`LinkError` and nothing else.
    """
    text = _clean_input(raw, max_length=MAX_LINK_LENGTH)
    parsed = _parse_url(text)
    product_id = _product_id(parsed.path)
    if product_id is not None:
        return ProductLink.from_product_id(product_id, _site(parsed.host))
    if parsed.host in SHORT_LINK_HOSTS and parsed.path.strip("/"):
        return _check_short_link(text, resolver)
    raise LinkError(LinkErrorCode.NOT_PRODUCT)


def _check_short_link(url: str, resolver: ShortLinkResolver | None) -> ProductLink:
    """Resolve a short link and check where it leads with the rules for a pasted link."""
    if resolver is None:
        raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE)
    parsed = _parse_hop(resolver(_with_scheme(url)))
    product_id = _product_id(parsed.path)
    if product_id is not None:
        return ProductLink.from_product_id(product_id, _site(parsed.host))
    if parsed.host in SHORT_LINK_HOSTS:
        raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE)
    raise LinkError(LinkErrorCode.NOT_PRODUCT)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def _clean_input(raw: object, *, max_length: int) -> str:
    """Strip surrounding whitespace and reject empty, over-long or character-level garbage input."""
    if raw is None:
        raise LinkError(LinkErrorCode.EMPTY)
    if not isinstance(raw, str):
        raise LinkError(LinkErrorCode.MALFORMED)
    text = raw.strip(_EDGE_JUNK)
    if not text:
        raise LinkError(LinkErrorCode.EMPTY)
    if len(text) > max_length:
        raise LinkError(LinkErrorCode.TOO_LONG)
    if "\\" in text or any(_is_forbidden_char(char) for char in text):
        raise LinkError(LinkErrorCode.MALFORMED)
    return text


def _is_forbidden_char(char: str) -> bool:
    """Control, format, surrogate, private/unassigned characters and any whitespace or separator."""
    return char.isspace() or unicodedata.category(char)[0] in ("C", "Z")


def _with_scheme(text: str) -> str:
    """Return ``text`` with an explicit ``http``/``https`` scheme, or raise ``bad_scheme``/``malformed``.

    A link without a scheme (``aliexpress.com/item/1.html``, ``//aliexpress.com/...``,
    ``aliexpress.com:443/...``) is read as ``https``. Anything with another scheme — ``ftp://``,
    ``javascript:``, ``data:``, ``mailto:`` … — is ``bad_scheme``.
    """
    if text.startswith("//"):
        return "https:" + text
    match = _SCHEME_RE.fullmatch(text)
    if match is None:
        return _schemeless(text)
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme in _DEFAULT_PORTS:
        if not rest.startswith("//"):
            raise LinkError(LinkErrorCode.MALFORMED)
        return text
    if rest.startswith("//"):
        raise LinkError(LinkErrorCode.BAD_SCHEME)
    if "." in scheme or rest[:1].isdigit():
        return _schemeless(text)  # "host.tld:port/..." or "localhost:8080" - a port, not a scheme
    raise LinkError(LinkErrorCode.BAD_SCHEME)


def _schemeless(text: str) -> str:
    """Prefix ``https://`` to a link pasted without a scheme; garbage without a dotted host is malformed."""
    host = re.split(r"[/?#:]", text, maxsplit=1)[0]
    if "." not in host.strip("."):
        raise LinkError(LinkErrorCode.MALFORMED)
    return "https://" + text


def _split(url: str) -> SplitResult:
    """``urlsplit`` that reports its ``ValueError`` (bad brackets, NFKC tricks) as ``malformed``."""
    try:
        return urlsplit(url)
    except ValueError:
        raise LinkError(LinkErrorCode.MALFORMED) from None


def _parse_url(text: str) -> _ParsedUrl:
    """Parse a cleaned link and check that it is an ``http(s)`` URL on an AliExpress host."""
    parts = _split(_with_scheme(text))
    host = _checked_host(parts.scheme.lower(), parts.netloc)
    return _ParsedUrl(host=host, path=parts.path)


def _checked_host(scheme: str, netloc: str) -> str:
    """Return the lower-case host of ``netloc`` if it is an AliExpress host, else raise."""
    if "@" in netloc or "[" in netloc or "]" in netloc:
        raise LinkError(LinkErrorCode.NOT_ALIEXPRESS)  # credentials trick or an IP literal
    host, colon, port = netloc.partition(":")
    if colon:
        _check_port(scheme, port)
    host = host.lower()
    if not host:
        raise LinkError(LinkErrorCode.MALFORMED)
    if not host.isascii() or not _is_aliexpress_domain(host):
        raise LinkError(LinkErrorCode.NOT_ALIEXPRESS)
    if not all(_LABEL_RE.fullmatch(label) for label in host.split(".")):
        raise LinkError(LinkErrorCode.MALFORMED)
    return host


def _check_port(scheme: str, port: str) -> None:
    """Accept an empty or the scheme's default port; another port is ``not_aliexpress``."""
    if not port:
        return
    if not _PORT_RE.fullmatch(port):
        raise LinkError(LinkErrorCode.MALFORMED)
    if int(port) != _DEFAULT_PORTS[scheme]:
        raise LinkError(LinkErrorCode.NOT_ALIEXPRESS)


def _is_aliexpress_domain(host: str) -> bool:
    """Exact registrable-domain match; punycode labels (look-alikes) never match."""
    if any(label.startswith("xn--") for label in host.split(".")):
        return False
    return any(host == domain or host.endswith("." + domain) for domain in ALLOWED_DOMAINS)


def _site(host: str) -> str:
    """The regional AliExpress site of an accepted host (``m.aliexpress.ru`` -> ``aliexpress.ru``)."""
    return next(domain for domain in ALLOWED_DOMAINS if host == domain or host.endswith("." + domain))


def _product_id(path: str) -> str | None:
    """Return the product id if ``path`` is a product-page path with a plausible id, else ``None``."""
    for pattern in PRODUCT_PATHS:
        match = pattern.fullmatch(path)
        if match is not None:
            return _plausible_id(match.group("id"))
    return None


def _plausible_id(digits: str) -> str | None:
    """Product ids are 6–20 ASCII digits without a leading zero (real ones have 8–20)."""
    if digits.startswith("0"):
        return None
    if not PRODUCT_ID_MIN_DIGITS <= len(digits) <= PRODUCT_ID_MAX_DIGITS:
        return None
    return digits


def _parse_hop(url: str) -> _ParsedUrl:
    """Check a URL reached while resolving a short link; off-site targets are ``short_link_offsite``."""
    try:
        return _parse_url(_clean_input(url, max_length=MAX_HOP_URL_LENGTH))
    except LinkError as error:
        if error.code in (LinkErrorCode.NOT_ALIEXPRESS, LinkErrorCode.BAD_SCHEME):
            raise LinkError(LinkErrorCode.SHORT_LINK_OFFSITE) from None
        raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE) from None


# --------------------------------------------------------------------------------------------------
# Short-link resolution over HTTP
# --------------------------------------------------------------------------------------------------


def requests_http_get(url: str, *, timeout: float) -> tuple[int, str | None]:
    """GET ``url`` with ``requests`` without following redirects; return status and ``Location``.

    The body is not downloaded (``stream=True``, closed at once). Network errors propagate as
    ``requests.RequestException``.
    """
    with requests.get(
        url,
        allow_redirects=False,
        timeout=timeout,
        stream=True,
        headers={"User-Agent": _USER_AGENT},
    ) as response:
        return response.status_code, response.headers.get("Location")


class HttpShortLinkResolver:
    """Follows a short link over HTTP by hand, one redirect at a time.

    Every hop (the short link itself and each ``Location``, relative or absolute) is validated as an
    AliExpress URL *before* it is requested, so we never contact a host outside AliExpress. It stops
    as soon as a hop is a product page (no need to load it), at a 2xx answer, or fails with
    ``short_link_offsite`` (a hop leaves AliExpress), ``short_link_loop`` (a cycle or more than
    ``max_redirects`` redirects) or ``short_link_unavailable`` (network error, timeout, error status).
    """

    def __init__(self, max_redirects: int = 5, timeout: float = 5.0, http_get: HttpGet | None = None) -> None:
        self.max_redirects = max_redirects
        self.timeout = timeout
        self._http_get: HttpGet = http_get or partial(requests_http_get, timeout=timeout)

    def __call__(self, url: str) -> str:
        """Return the product URL (or last non-redirect URL) that ``url`` leads to."""
        current = url
        seen = {current}
        redirects = 0
        while True:
            if _product_id(_parse_hop(current).path) is not None:
                return current
            status, location = self._fetch(current)
            if status not in _REDIRECT_STATUSES:
                return self._final(current, status)
            if redirects >= self.max_redirects:
                raise LinkError(LinkErrorCode.SHORT_LINK_LOOP)
            current = self._next_hop(current, location, seen)
            redirects += 1

    def _fetch(self, url: str) -> tuple[int, str | None]:
        """One request; any network failure becomes ``short_link_unavailable``."""
        try:
            return self._http_get(url)
        except (requests.RequestException, OSError):
            raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE) from None

    @staticmethod
    def _final(url: str, status: int) -> str:
        """A non-redirect answer: a 2xx page is where the link leads; anything else is unavailable."""
        if 200 <= status < 300:
            return url
        raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE)

    @staticmethod
    def _next_hop(current: str, location: str | None, seen: set[str]) -> str:
        """Resolve ``Location`` against the current URL, validate it and detect cycles."""
        if not location or not location.strip():
            raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE)
        try:
            target = urljoin(current, location.strip())
        except ValueError:
            raise LinkError(LinkErrorCode.SHORT_LINK_UNAVAILABLE) from None
        _parse_hop(target)
        if target in seen:
            raise LinkError(LinkErrorCode.SHORT_LINK_LOOP)
        seen.add(target)
        return target
