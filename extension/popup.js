// The popup: log in, the balance, and on an AliExpress product page the button that creates a
// click (channel "extension") and sends that tab through our /go/<sub_id> tracked redirect.
//
// It works on the active tab, or on the tab given as popup.html?target=<tabId> (used by the
// headless test, which opens the popup as a tab of its own).
import * as api from "./lib.js";

const $ = (id) => document.getElementById(id);
const t = api.t;

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function errorText(error) {
  if (error instanceof api.ApiError) {
    if (error.status === 0) return t("unreachable");
    if (error.status === 401) return t("sessionExpired");
    if (error.message) return error.message;  // the portal's own, translated message
  }
  return t("failed");
}

async function targetTab() {
  const target = new URLSearchParams(location.search).get("target");
  if (target) return chrome.tabs.get(Number(target));
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  return tab;
}

// --- the ad-blocker probe -------------------------------------------------------------------------

/** Runs in the product tab: can the page reach the network's tracking host? (true / false / null = no answer in time) */
async function probe(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  try {
    await fetch(url, { mode: "no-cors", cache: "no-store", credentials: "omit", signal: controller.signal });
    return true;
  } catch (error) {
    return controller.signal.aborted ? null : false;
  } finally {
    clearTimeout(timer);
  }
}

/** Probe from the product page itself, where an ad blocker filters requests (it does not see an extension's own). */
async function trackingBlocked(tabId) {
  const host = await api.trackingHost();
  const url = `https://${host}/`;
  let reachable;
  try {
    const [result] = await chrome.scripting.executeScript({ target: { tabId }, func: probe, args: [url] });
    reachable = result.result;
  } catch (error) {
    reachable = await probe(url);  // the page cannot be scripted: at least a DNS-level blocker shows here
  }
  return { blocked: reachable === false, host };
}

// --- rendering --------------------------------------------------------------------------------------

function showBalance(data) {
  for (const kind of ["pending", "available"]) {
    const row = $(`balance-${kind}`);
    row.querySelector(".amount").textContent = `${data[kind].display} ${data.currency}`;
    row.querySelector(".amount").dataset.exact = data[kind].exact;
    row.querySelector(".rub").textContent = data.rub ? t("rub", [data.rub[kind].display]) : "";
  }
}

function minutesAgo(at) {
  return String(Math.max(0, Math.floor((Date.now() - at) / 60_000)));
}

async function showProduct(tab) {
  const product = tab && tab.url ? api.productFromUrl(tab.url) : null;
  $("not-product").hidden = Boolean(product);
  $("product").hidden = !product;
  if (!product) return;
  const section = $("product");
  section.dataset.product = product.productId;
  section.dataset.tab = String(tab.id);
  $("product-title").textContent = t("productTitle", [product.productId]);
  $("product-name").textContent = tab.title || product.canonicalUrl;

  const recent = await api.recentClick(product.productId);
  if (recent) {
    $("warn-recent").textContent = t("warnRecent", [minutesAgo(recent.at)]);
    $("warn-recent").hidden = false;
  }
  api.checkLink(tab.url).then((link) => {
    $("product-rate").textContent = t("rate", [link.rate]);
  }).catch((error) => showError(errorText(error)));
  trackingBlocked(tab.id).then(({ blocked, host }) => {
    $("warn-adblock").textContent = t("warnAdblock", [host]);
    $("warn-adblock").hidden = !blocked;
    section.dataset.probe = blocked ? "blocked" : "ok";
  });
  $("go").onclick = () => go(tab, product);
}

async function go(tab, product) {
  const button = $("go");
  button.disabled = true;
  showError("");
  try {
    const click = await api.createClick(tab.url);
    await api.rememberClick(product.productId, click.repeat_count);
    $("go-message").textContent = click.message;
    $("go-message").hidden = false;
    $("go-message").dataset.subId = click.sub_id;
    if (click.repeat_count > 1) {
      $("warn-recent").textContent = t("warnRepeat", [String(click.repeat_count), String(api.REPEAT_WINDOW_MINUTES)]);
      $("warn-recent").hidden = false;
    }
    await chrome.tabs.update(tab.id, { url: click.go_url });
  } catch (error) {
    showError(errorText(error));
    if (error instanceof api.ApiError && error.status === 401) await render();
  } finally {
    button.disabled = false;
  }
}

async function render() {
  const current = await api.session();
  $("login").hidden = Boolean(current);
  $("account").hidden = !current;
  document.body.dataset.state = current ? "account" : "login";
  if (!current) return;
  $("who").textContent = t("loggedInAs", [current.username || ""]);
  await showProduct(await targetTab());
  try {
    showBalance(await api.balance());
  } catch (error) {
    showError(errorText(error));
    if (error instanceof api.ApiError && error.status === 401) await render();
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  $("login-button").disabled = true;
  try {
    await api.login($("email").value.trim(), $("password").value);
    $("password").value = "";
    await render();
  } catch (error) {
    showError(error instanceof api.ApiError && error.status === 401 ? t("loginFailed") : errorText(error));
  } finally {
    $("login-button").disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  await api.logout();
  showError("");
  await render();
});

$("settings").addEventListener("click", () => chrome.runtime.openOptionsPage());

await api.initI18n();
api.translatePage();
render();
