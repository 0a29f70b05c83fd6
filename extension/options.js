// The options page: the portal's address (stored in chrome.storage.local; default the demo's
// http://127.0.0.1:5000), the network's tracking host probed for ad blockers, and the language.
import * as api from "./lib.js";

const $ = (id) => document.getElementById(id);

async function load() {
  const [base, host, language] = await Promise.all([api.apiBase(), api.trackingHost(), api.language()]);
  $("portal-url").value = base;
  $("tracking-host").value = host;
  $("language").value = language;
  document.body.dataset.loaded = "true";
}

$("options-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const base = api.normaliseBase($("portal-url").value);
  const host = $("tracking-host").value.trim().toLowerCase();
  const status = $("status");
  if (!base || !/^[a-z0-9.-]+$/.test(host)) {
    status.textContent = api.t("badUrl");
    return;
  }
  // Called at once, in the click's user gesture: a portal outside the manifest's host_permissions
  // (127.0.0.1, localhost) needs the customer's consent; an origin already granted answers true.
  const origin = `${new URL(base).origin}/*`;
  chrome.permissions.contains({ origins: [origin] })
    .then((granted) => granted || chrome.permissions.request({ origins: [origin] }))
    .then(async (granted) => {
      if (!granted) {
        status.textContent = api.t("permissionDenied");
        return;
      }
      const { apiBase: previous } = await chrome.storage.local.get("apiBase");
      if (previous && previous !== base) await api.logout();  // a token of another portal is useless
      await chrome.storage.local.set({ apiBase: base, trackingHost: host, language: $("language").value });
      await api.initI18n();
      api.translatePage();
      status.textContent = api.t("saved");
    });
});

await api.initI18n();
api.translatePage();
load();
