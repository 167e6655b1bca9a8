// UM 2FA companion app's service worker (served as /app/sw.js, so its scope is /app/).
// - A push carries only {"type": "push", "id": <request id>}: show a notification; the app
//   fetches the details with a signed call. Nothing about the login rides the push service.
// - {"type": "notice", "id": <notice id>}: a change to the account's second factor (a device
//   added or removed, a recovery passcode issued, the account locked); the app lists them with
//   GET /notices (signed) and offers "This wasn't me".
// - A tap on the notification opens (or focuses) the app on that request.
// - The app shell is cached so that the passcodes work without a network.

const CACHE = "um2fa-companion-v1";
const SHELL = [
  "./",
  "./manifest.webmanifest",
  "../static/companion/app.js",
  "../static/companion/crypto.js",
  "../static/companion/app.css",
  "../static/companion/icon-192.png",
  "../static/css/site.css",
  "../static/favicon.svg",
].map((path) => new URL(path, self.location).href);
const SCOPE = new URL("./", self.location).href;

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
  if (!SHELL.includes(url.href)) return;
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
    if (data.type === "notice") {
      for (const client of windows) client.postMessage({ type: "notice", id });
      await self.registration.showNotification("Security notice - tap to review", {
        body: "Something changed on your account. Was it you?",
        tag: `notice-${id}`,
        icon: new URL("../static/companion/icon-192.png", self.location).href,
        data: { notice: id },
      });
      return;
    }
    for (const client of windows) client.postMessage({ type: "push", id });
    await self.registration.showNotification("Login request - tap to review", {
      body: "Someone is signing in with your account. Was it you?",
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
