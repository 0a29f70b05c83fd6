// The service worker: marks AliExpress product pages with a badge on the toolbar icon, so the
// customer sees where "Перейти к покупкам в плагине" applies. Everything else happens in the popup.
import { productFromUrl } from "./lib.js";

function mark(tabId, url) {
  const text = url && productFromUrl(url) ? "%" : "";
  chrome.action.setBadgeText({ tabId, text }).catch(() => {});  // the tab may be gone already
}

chrome.runtime.onInstalled.addListener(() => {
  chrome.action.setBadgeBackgroundColor({ color: "#e8590c" });
});

// tab.url is only visible for hosts in host_permissions: exactly the AliExpress pages we mark.
chrome.tabs.onUpdated.addListener((tabId, changeInfo, tab) => {
  if (changeInfo.url || changeInfo.status === "complete") mark(tabId, tab.url);
});
