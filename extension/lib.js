// Shared by the popup, the options page and the service worker (an ES module; no libraries).
//
// * settings: the portal's base URL, in chrome.storage.local (default http://127.0.0.1:5000, the demo);
// * the customer API (portal/api/customer.py): JWT login, refresh, clicks, balance, link check;
// * the tracking host probed for ad blockers (default alitems.site, settable in the options);
// * productFromUrl(): the AliExpress product-page rules of portal/services/links.py;
// * recent clicks: the last click per product, kept locally to warn before another one.

export const DEFAULT_API_BASE = "http://127.0.0.1:5000";
/** The affiliate network's redirect host: ePN's, as in the portal's default CASHBACK_NETWORK_URL_TEMPLATE. */
export const DEFAULT_TRACKING_HOST = "alitems.site";
/** Mirrors the portal's CASHBACK_CLICK_REPEAT_WINDOW_MINUTES default (clicks within it are repeats). */
export const REPEAT_WINDOW_MINUTES = 60;

// --- AliExpress product pages (keep in step with ALLOWED_DOMAINS / PRODUCT_PATHS in links.py) -----

const ALLOWED_DOMAINS = ["aliexpress.com", "aliexpress.ru", "aliexpress.us"];
const ID = "([0-9]+)";
const PRODUCT_PATHS = [
  `/item/${ID}\\.html`,
  `/item/[^/]+/${ID}\\.html`,
  `/i/${ID}\\.html`,
  `/s/item/${ID}\\.html`,
  `/store/product/[^/]+/[0-9]+_${ID}\\.html`,
].map((pattern) => new RegExp(`^${pattern}$`, "i"));

/** {productId, canonicalUrl} when `url` is an AliExpress product page, else null. */
export function productFromUrl(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch (error) {
    return null;
  }
  if (!["http:", "https:"].includes(parsed.protocol) || parsed.port || parsed.username) return null;
  const host = parsed.hostname.toLowerCase();
  if (host.split(".").some((label) => label.startsWith("xn--"))) return null;
  if (!ALLOWED_DOMAINS.some((domain) => host === domain || host.endsWith("." + domain))) return null;
  for (const pattern of PRODUCT_PATHS) {
    const match = pattern.exec(parsed.pathname);
    if (match) {
      const id = match[1];
      if (id.startsWith("0") || id.length < 6 || id.length > 20) return null;
      return { productId: id, canonicalUrl: `https://aliexpress.com/item/${id}.html` };
    }
  }
  return null;
}

// --- settings and tokens ------------------------------------------------------------------------

/** The portal's origin without a trailing slash. */
export async function apiBase() {
  const { apiBase } = await chrome.storage.local.get("apiBase");
  // a stored plain-http portal (saved before https was required) falls back to the default
  return normaliseBase(apiBase || DEFAULT_API_BASE) || DEFAULT_API_BASE;
}

/** The host whose requests an ad blocker must not drop, or the purchase is not tracked. */
export async function trackingHost() {
  const { trackingHost } = await chrome.storage.local.get("trackingHost");
  return trackingHost || DEFAULT_TRACKING_HOST;
}

/** True for a host only this computer reaches: 127.0.0.0/8, [::1], localhost. */
export function isLoopback(hostname) {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** A checked base URL or null: https (the login's password and tokens travel to it), plain
 * http only on loopback (the demo); no user-info, no path beyond "/". */
export function normaliseBase(text) {
  let parsed;
  try {
    parsed = new URL(String(text).trim());
  } catch (error) {
    return null;
  }
  if (parsed.username || parsed.password) return null;
  if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && isLoopback(parsed.hostname))) return null;
  return parsed.origin + parsed.pathname.replace(/\/+$/, "");
}

export async function session() {
  const { token, refreshToken, username } = await chrome.storage.local.get(["token", "refreshToken", "username"]);
  return token ? { token, refreshToken, username } : null;
}

export async function logout() {
  await chrome.storage.local.remove(["token", "refreshToken", "username"]);
}

// --- the API ------------------------------------------------------------------------------------

/** An API failure: `status` (0 = no answer), `code` and the portal's (translated) `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

async function send(method, path, { body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch((await apiBase()) + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", "");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || (data && data.message) || String(response.status),
                       error.message || "");
  }
  return data;
}

/** FAB's JWT login (the customer's e-mail is the username); keeps both tokens. */
export async function login(email, password) {
  const data = await send("POST", "/api/v1/security/login",
                          { body: { username: email, password, provider: "db", refresh: true } });
  await chrome.storage.local.set({ token: data.access_token, refreshToken: data.refresh_token, username: email });
}

async function refresh() {
  const current = await session();
  if (!current || !current.refreshToken) return null;
  try {
    const data = await send("POST", "/api/v1/security/refresh", { token: current.refreshToken });
    await chrome.storage.local.set({ token: data.access_token });
    return data.access_token;
  } catch (error) {
    return null;
  }
}

/** A call with the access token; on 401 one refresh and one retry, else the session is dropped. */
export async function authorised(method, path, body) {
  const current = await session();
  if (!current) throw new ApiError(401, "unauthorized", "");
  try {
    return await send(method, path, { body, token: current.token });
  } catch (error) {
    if (error.status !== 401) throw error;
  }
  const token = await refresh();
  if (!token) {
    await logout();
    throw new ApiError(401, "unauthorized", "");
  }
  return send(method, path, { body, token });
}

export const balance = () => authorised("GET", "/api/v1/me/balance");
export const createClick = (url) => authorised("POST", "/api/v1/clicks", { url, channel: "extension" });

/** The public link check: product id, canonical URL and the rate (the customer's, with a token). */
export async function checkLink(url) {
  const current = await session();  // a stale token counts as none there: no 401 to handle
  return send("POST", "/api/v1/links/check", { body: { url }, token: current && current.token });
}

// --- recent clicks per product ------------------------------------------------------------------

export async function recentClick(productId, now = Date.now()) {
  const { recent = {} } = await chrome.storage.local.get("recent");
  const entry = recent[productId];
  if (!entry || now - entry.at > REPEAT_WINDOW_MINUTES * 60_000) return null;
  return entry;
}

export async function rememberClick(productId, repeatCount, now = Date.now()) {
  const { recent = {} } = await chrome.storage.local.get("recent");
  for (const [key, entry] of Object.entries(recent)) {  // forget what is out of the window
    if (now - entry.at > REPEAT_WINDOW_MINUTES * 60_000) delete recent[key];
  }
  recent[productId] = { at: now, count: repeatCount };
  await chrome.storage.local.set({ recent });
}

// --- i18n ---------------------------------------------------------------------------------------
//
// By default the browser's language (chrome.i18n: Russian where Chromium runs in Russian, else the
// closest of _locales). The options page can fix "ru" or "en": then the same messages.json files are
// read directly, so a Chromium without its Russian UI pack (or in English) still speaks Russian.

let fixed = null;  // the chosen locale's messages, or null: chrome.i18n

export const LANGUAGES = ["ru", "en"];

export async function language() {
  const { language } = await chrome.storage.local.get("language");
  return LANGUAGES.includes(language) ? language : "auto";
}

export async function initI18n() {
  const chosen = await language();
  fixed = chosen === "auto" ? null : await (await fetch(chrome.runtime.getURL(`_locales/${chosen}/messages.json`))).json();
  document.documentElement.lang = chosen === "auto" ? chrome.i18n.getUILanguage() : chosen;
}

function format(entry, substitutions = []) {
  let text = entry.message;
  for (const [name, placeholder] of Object.entries(entry.placeholders || {})) {
    text = text.replace(new RegExp(`\\$${name}\\$`, "gi"), () => placeholder.content);
  }
  return text.replace(/\$(\d)/g, (all, n) => substitutions[Number(n) - 1] ?? "").replace(/\$\$/g, "$");
}

export function t(key, substitutions) {
  const list = substitutions === undefined ? [] : [].concat(substitutions).map(String);
  if (fixed) return fixed[key] ? format(fixed[key], list) : key;
  return chrome.i18n.getMessage(key, list) || key;
}

/** Fill every [data-i18n] element's text (and [data-i18n-placeholder]) from _locales. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
}
