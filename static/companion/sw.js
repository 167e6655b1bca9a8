// UM 2FA companion app's service worker (served as /app/sw.js, so its scope is /app/).
// - A push carries only {"type": "push", "id": <request id>}: show a notification; the app
//   fetches the details with a signed call. Nothing about the login rides the push service.
// - {"type": "notice", "id": <notice id>}: a change to the account's second factor (a device
//   added or removed, a recovery passcode issued, the account locked); the app lists them with
//   GET /notices (signed) and offers "This wasn't me".
// - A tap on the notification opens (or focuses) the app on that request.
// - The app shell is cached so that the passcodes work without a network.
// - Notifications speak the app's language: the app tells this worker which one it shows
//   ({"type": "language"}); the worker keeps that catalog (/app/strings/<language>.json) in its
//   cache and translates with it (the texts are marked _("...") for the "companion" catalog).

const CACHE = "um2fa-companion-v1";
const SHELL = [
  "./",
  "./manifest.webmanifest",
  "../static/companion/app.js",
  "../static/companion/crypto.js",
  "../static/companion/i18n.js",
  "../static/companion/app.css",
  "../static/companion/icon-192.png",
  "../static/css/site.css",
  "../static/favicon.svg",
].map((path) => new URL(path, self.location).href);
const SCOPE = new URL("./", self.location).href;
const STRINGS = new URL("./strings/", self.location).href;
const CURRENT_STRINGS = `${STRINGS}current.json`; // the catalog of the app's language

async function strings() {
  try {
    const cached = await caches.match(CURRENT_STRINGS);
    return cached ? await cached.json() : {};
  } catch {
    return {};
  }
}

let catalog = {}; // read from the cache for each push

function _(msgid) {
  return Object.prototype.hasOwnProperty.call(catalog, msgid) && catalog[msgid]
    ? catalog[msgid] : msgid;
}

async function keepLanguage(language) {
  if (!/^[A-Za-z_]{2,20}$/.test(language)) return;
  try {
    const response = await fetch(`${STRINGS}${language}.json`, { credentials: "omit" });
    if (response.ok) await (await caches.open(CACHE)).put(CURRENT_STRINGS, response);
  } catch {
    // offline: keep the catalog we have
  }
}

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type === "language" && typeof data.language === "string") {
    event.waitUntil(keepLanguage(data.language));
  }
});

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

// The shell: network first (so an update shows at once), the cached copy when offline.
// Everything else, the device API above all, goes straight to the network.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  url.hash = "";
  url.search = "";
  if (!SHELL.includes(url.href) && !url.href.startsWith(STRINGS)) return;
  event.respondWith(fetch(request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(url.href, copy));
    }
    return response;
  }).catch(() => caches.match(url.href).then((cached) => cached || Response.error())));
});

function payloadOf(event) {
  try {
    return event.data ? event.data.json() : {};
  } catch {
    return {};
  }
}

self.addEventListener("push", (event) => {
  const data = payloadOf(event);
  const id = typeof data.id === "string" ? data.id : "";
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    catalog = await strings();
    if (data.type === "notice") {
      for (const client of windows) client.postMessage({ type: "notice", id });
      await self.registration.showNotification(_("Security notice - tap to review"), {
        body: _("Something changed on your account. Was it you?"),
        tag: `notice-${id}`,
        icon: new URL("../static/companion/icon-192.png", self.location).href,
        data: { notice: id },
      });
      return;
    }
    for (const client of windows) client.postMessage({ type: "push", id });
    await self.registration.showNotification(_("Login request - tap to review"), {
      body: _("Someone is signing in with your account. Was it you?"),
      tag: id ? `request-${id}` : "request",
      icon: new URL("../static/companion/icon-192.png", self.location).href,
      data: { id },
      requireInteraction: true,
    });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = (event.notification.data && event.notification.data.id) || "";
  const target = id ? `${SCOPE}#request=${encodeURIComponent(id)}` : SCOPE;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((client) => client.url.startsWith(SCOPE));
    if (open) {
      open.postMessage({ type: "open", id });
      return open.focus();
    }
    return self.clients.openWindow(target);
  })());
});
