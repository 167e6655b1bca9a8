// UM 2FA companion app: activation, passcodes and login requests (docs/device-api.md).
// Plain modules, no build step. Keys are WebCrypto CryptoKeys kept in IndexedDB; the private
// key and the passcode key are non-extractable, so not even this script can read them out.
import * as c from "./crypto.js";
import { N_, _, load } from "./i18n.js";

const script = document.querySelector("script[data-sw]");
const ROOT = script.dataset.root || "";
const API = "/api/device/v1";
const POLL_MS = 2000;
const RESULT_KEEP_MS = 60000;
// Times in the university's time zone, formatted for the page's language (the server says
// which: data-locale, e.g. "zh-Hant-MO", and data-timezone, e.g. "Asia/Macau").
const LOCALE = script.dataset.locale || undefined;
const TIME_ZONE = script.dataset.timezone || undefined;

// Marked with N_ (for the catalog), translated with _ where shown.
const RESULTS = {
  approved: [N_("Approved"), N_("Your sign-in continues on the login screen.")],
  used: [N_("Approved"), N_("You are signed in.")],
  denied: [N_("Denied"), N_("The sign-in was refused.")],
  mismatch: [N_("The number did not match"), N_("The sign-in was refused. Try again from the "
    + "login screen and type the number it shows.")],
  fraud: [N_("Reported as fraud"), N_("The sign-in was refused and pushes to your account are "
    + "paused. Change your password and contact the IT help desk.")],
  expired: [N_("Expired"), N_("Send a new push from the login screen.")],
};
const DOORS = {
  portal: N_("2FA portal"), sso: N_("Single sign-on"), radius: N_("VPN / network"),
};

const $ = (id) => document.getElementById(id);
const state = {
  accounts: [],
  clockOffset: 0,
  cards: new Map(), // request id -> {el, account, data, done}
  focusId: null,
  polling: false,
  pushUnavailable: false,
  renewPush: false, // the server dropped our push subscription: make a new one
  config: null,
};

// --- IndexedDB ---------------------------------------------------------------------------------

let dbPromise = null;

function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const open = indexedDB.open("um2fa", 1);
    open.onupgradeneeded = () => {
      open.result.createObjectStore("accounts", { keyPath: "id" });
      open.result.createObjectStore("meta");
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  return dbPromise;
}

async function store(name, mode, action) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const tx = database.transaction(name, mode);
    const request = action(tx.objectStore(name));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

const loadAccounts = () => store("accounts", "readonly", (s) => s.getAll());
const saveAccount = (account) => store("accounts", "readwrite", (s) => s.put(account));
const forgetAccount = (id) => store("accounts", "readwrite", (s) => s.delete(id));
const getMeta = (key) => store("meta", "readonly", (s) => s.get(key));
const setMeta = (key, value) => store("meta", "readwrite", (s) => s.put(value, key));

// --- the server's clock -------------------------------------------------------------------------
// Signed calls are good for ±60 s and passcodes for a 30 s step, both by the server's clock.

const now = () => Date.now() / 1000 + state.clockOffset;

async function learnClock(serverSeconds) {
  if (!Number.isFinite(serverSeconds)) return;
  state.clockOffset = serverSeconds - Date.now() / 1000;
  await setMeta("clockOffset", state.clockOffset);
}

// --- calls ----------------------------------------------------------------------------------------

async function call(method, path, payload, headers = {}) {
  const body = payload === undefined ? "" : JSON.stringify(payload);
  // the server's messages in the app's language (the app sends no cookie)
  const language = document.documentElement.lang || "en";
  const init = { method, headers: { "Accept-Language": language, ...headers },
    cache: "no-store", credentials: "omit" };
  if (body) {
    init.body = body;
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(ROOT + path, init);
  } catch {
    setOnline(false);
    return { ok: false, status: 0, error: _("No network connection.") };
  }
  setOnline(true);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  const error = (data && data.error)
    || (response.ok ? "" : _("The service answered unexpectedly (HTTP %(status)s).",
      { status: response.status }));
  const reason = (data && data.reason) || error; // a refused signature's reason, in English
  return { ok: response.ok && data !== null, status: response.status, data, error, reason,
    response };
}

// Every call after activation is signed by the device key over the method, the path, the
// timestamp and the body's hash (app/core/device_keys.py, call_message).
async function signedCall(account, method, path, payload, retried = false) {
  const body = payload === undefined ? "" : JSON.stringify(payload);
  const timestamp = String(Math.floor(now()));
  const message = c.callMessage(method, path, timestamp, await c.sha256Hex(body));
  const signature = await c.signText(account.keyPair.privateKey, message);
  const result = await call(method, path, payload, {
    "X-UM2FA-Device": String(account.deviceId),
    "X-UM2FA-Timestamp": timestamp,
    "X-UM2FA-Signature": signature,
  });
  if (result.status === 401 && /timestamp/i.test(result.reason) && !retried) {
    const date = Date.parse(result.response.headers.get("Date") || "");
    await learnClock(date / 1000);
    return signedCall(account, method, path, payload, true);
  }
  if (result.status === 401 && /unknown or inactive device/i.test(result.reason)) {
    await markGone(account);
  }
  return result;
}

async function config() {
  if (!state.config) {
    const result = await call("GET", `${API}/config`);
    if (result.ok) state.config = result.data;
  }
  return state.config;
}

// --- activation -------------------------------------------------------------------------------

function activationCode(text) {
  const value = (text || "").trim();
  const match = value.match(/#activate=([^&\s]+)/);
  let code = value;
  try {
    code = match ? decodeURIComponent(match[1]) : value;
  } catch {
    return ""; // a mangled link ("%" not followed by hex): no code, not a dead page
  }
  return /^[A-Za-z0-9_-]{16,100}$/.test(code) ? code : "";
}

async function activate(code) {
  const keyPair = await c.newDeviceKey();
  const publicKey = await c.exportPublicKey(keyPair);
  const proof = await c.signText(keyPair.privateKey, c.activationMessage(code));
  const result = await call("POST", `${API}/activate`, { code, public_key: publicKey, proof });
  if (!result.ok) throw new Error(result.error || _("The activation failed. Please try again."));
  const answer = result.data;
  await learnClock(Number(answer.server_time));
  const totp = answer.totp;
  const account = {
    id: String(answer.device_id),
    deviceId: answer.device_id,
    deviceName: answer.device_name,
    username: answer.username,
    issuer: answer.issuer,
    keyPair,
    totpKey: await c.importTotpKey(totp.secret, totp.algorithm || "SHA1"),
    digits: totp.digits || 6,
    period: totp.period || 30,
    endpoint: null,
    gone: false,
    activatedAt: Date.now(),
  };
  await saveAccount(account);
  state.accounts.push(account);
  return account;
}

async function onActivate(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const code = activationCode(form.elements.code.value);
  if (!code) {
    showProblem(_("Paste the activation link from the 2FA portal (or the code after "
      + "“#activate=”)."));
    form.elements.code.focus();
    return;
  }
  const asking = askPermission(); // inside the tap: browsers only ask on a user gesture
  const button = form.querySelector("button");
  button.disabled = true;
  showProblem("");
  try {
    const account = await activate(code);
    history.replaceState(null, "", location.pathname);
    form.reset();
    showMessage(_("This phone is activated for %(user)s at %(issuer)s.",
      { user: account.username, issuer: account.issuer }));
    render();
  } catch (error) {
    showProblem(error.message);
  } finally {
    button.disabled = false;
  }
  await asking;
  await ensureSubscription();
  poll();
}

// --- notifications (Web Push) -------------------------------------------------------------------

const pushSupported = () => "serviceWorker" in navigator && "PushManager" in window
  && "Notification" in window;

function askPermission() {
  if (!pushSupported() || Notification.permission !== "default") return Promise.resolve();
  return Notification.requestPermission().catch(() => undefined);
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(null), ms))]);
}

function sameKey(buffer, base64url) {
  if (!buffer) return false;
  return c.b64url(buffer) === base64url;
}

async function subscription(registration, key, renew) {
  let current = await registration.pushManager.getSubscription();
  if (current && (renew || !sameKey(current.options.applicationServerKey, key))) {
    await current.unsubscribe();
    current = null;
  }
  if (current) return current;
  return registration.pushManager.subscribe({
    userVisibleOnly: true, applicationServerKey: c.b64urlDecode(key),
  });
}

// Subscribe and tell the server, for each account. Without a push service (some browsers,
// headless ones) this fails quietly: the app then polls while it is open.
async function ensureSubscription() {
  const live = state.accounts.filter((a) => !a.gone);
  if (!live.length || !pushSupported() || Notification.permission !== "granted") {
    renderNotify();
    return;
  }
  const registration = await withTimeout(navigator.serviceWorker.ready, 5000);
  const settings = await config();
  let sub = null;
  if (registration && settings && settings.vapid_public_key) {
    try {
      sub = await withTimeout(
        subscription(registration, settings.vapid_public_key, state.renewPush), 15000);
      state.renewPush = false;
    } catch {
      sub = null;
    }
  }
  state.pushUnavailable = !sub;
  renderNotify();
  if (!sub) return;
  const json = sub.toJSON();
  for (const account of live) {
    if (account.endpoint === json.endpoint) continue;
    const result = await signedCall(account, "PUT", `${API}/subscription`, { subscription: json });
    if (result.ok) {
      account.endpoint = json.endpoint;
      await saveAccount(account);
    }
  }
}

async function onNotify() {
  await askPermission();
  await ensureSubscription();
}

function renderNotify() {
  const any = state.accounts.some((a) => !a.gone);
  const supported = pushSupported();
  const permission = supported ? Notification.permission : "denied";
  $("notify-box").hidden = !any || !supported || permission !== "default";
  $("notify-off").hidden = !any || (supported && permission !== "denied"
    && !state.pushUnavailable);
}

// --- login requests -----------------------------------------------------------------------------

async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    const seen = new Set();
    for (const account of state.accounts.filter((a) => !a.gone)) {
      const result = await signedCall(account, "GET", `${API}/requests`);
      if (!result.ok) continue;
      if (result.data.push_subscribed === false && account.endpoint) {
        // the push service said our subscription is gone: subscribe anew and send it
        account.endpoint = null;
        state.renewPush = true;
        ensureSubscription();
      }
      for (const data of result.data.requests || []) {
        seen.add(data.id);
        showRequest(account, data);
      }
    }
    for (const [id, card] of state.cards) {
      if (!card.done && !card.busy && !seen.has(id)) await settle(id, card);
    }
    if (state.focusId) await focusRequest(state.focusId);
    await pollNotices();
  } finally {
    state.polling = false;
    $("no-requests").hidden = state.cards.size > 0;
  }
}

// --- notices: changes to the account, with "This wasn't me" ----------------------------------

const NOTICES_EVERY_MS = 30000;

async function pollNotices(force = false) {
  if (!force && Date.now() - (state.noticesAt || 0) < NOTICES_EVERY_MS) return;
  state.noticesAt = Date.now();
  const items = [];
  for (const account of state.accounts.filter((a) => !a.gone)) {
    const result = await signedCall(account, "GET", `${API}/notices`);
    if (!result.ok) continue;
    for (const notice of result.data.notices || []) items.push({ account, notice });
  }
  renderNotices(items);
}

function renderNotices(items) {
  const list = $("notices");
  list.replaceChildren();
  for (const { account, notice } of items) {
    const item = document.createElement("li");
    item.className = "device";
    const what = document.createElement("strong");
    what.textContent = notice.text;
    const facts = document.createElement("div");
    facts.className = "muted";
    const address = notice.client_addr || _("unknown");
    facts.textContent = _("%(time)s · from %(address)s · %(user)s", {
      time: notice.local_time, address, user: account.username,
    });
    item.append(what, facts);
    if (notice.can_report) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "danger small";
      button.textContent = _("This wasn't me");
      button.addEventListener("click", () => reportNotice(account, notice, button));
      item.append(button);
    }
    list.append(item);
  }
  $("notices-view").hidden = items.length === 0;
}

async function reportNotice(account, notice, button) {
  if (!window.confirm(_("Undo this change, sign out everywhere and lock your account?"))) {
    return;
  }
  button.disabled = true;
  const result = await signedCall(account, "POST", `${API}/notices/${notice.id}/wasnt-me`);
  if (result.ok) {
    showMessage(_("Done: your account is locked and the IT help desk will contact you. "
      + "Change your UMPASS password now."));
  } else {
    showProblem(result.error || _("That did not work. Please contact the IT help desk."));
  }
  pollNotices(true);
}

// A request that is no longer pending without our answer: expired, or answered elsewhere.
async function settle(id, card) {
  const result = await signedCall(card.account, "GET", `${API}/requests/${id}`);
  finish(card, result.ok ? result.data.status : "expired");
}

async function focusRequest(id) {
  let card = state.cards.get(id);
  if (!card) {
    for (const account of state.accounts.filter((a) => !a.gone)) {
      const result = await signedCall(account, "GET", `${API}/requests/${id}`);
      if (!result.ok) continue;
      card = showRequest(account, result.data);
      if (result.data.status && result.data.status !== "pending") finish(card, result.data.status);
      break;
    }
  }
  state.focusId = null;
  if (card) {
    card.el.classList.add("focus");
    card.el.scrollIntoView({ block: "start" });
  }
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(LOCALE, {
    dateStyle: "medium", timeStyle: "medium", timeZone: TIME_ZONE,
  });
}

// Where a sign-in comes from, in words a person knows: on or off campus, then the address.
function whereFrom(data) {
  const address = data.client_addr || _("an unknown address");
  if (data.campus === true) return _("On campus (%(address)s)", { address });
  if (data.campus === false) return _("Off campus (%(address)s)", { address });
  return address;
}

function showRequest(account, data) {
  const existing = state.cards.get(data.id);
  if (existing) return existing;
  const el = $("request-template").content.firstElementChild.cloneNode(true);
  el.dataset.id = data.id;
  el.querySelector(".r-user").textContent = data.username || account.username;
  el.querySelector(".r-service").textContent = data.service
    || (DOORS[data.door] ? _(DOORS[data.door]) : data.door);
  el.querySelector(".r-addr").textContent = whereFrom(data);
  el.querySelector(".r-when").textContent = when(data.created_at);
  const card = { el, account, data, done: false, busy: false,
    expires: Date.parse(data.expires_at) / 1000 };
  const numberBox = el.querySelector(".r-number");
  numberBox.hidden = !data.verified;
  const form = el.querySelector(".r-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    answer(card, "approve");
  });
  el.querySelector(".r-deny").addEventListener("click", () => {
    el.querySelector(".r-fraud").hidden = false;
    el.querySelector(".r-buttons").hidden = true;
    el.querySelector(".r-just-deny").focus();
  });
  el.querySelector(".r-report").addEventListener("click", () => answer(card, "fraud"));
  el.querySelector(".r-just-deny").addEventListener("click", () => answer(card, "deny"));
  state.cards.set(data.id, card);
  $("requests").prepend(el);
  $("no-requests").hidden = true;
  tickRequest(card);
  if (data.verified) el.querySelector(".number-input").focus({ preventScroll: true });
  return card;
}

async function answer(card, decision) {
  if (card.busy || card.done) return;
  const input = card.el.querySelector(".number-input");
  const number = decision === "approve" && card.data.verified ? input.value.trim() : "";
  if (decision === "approve" && card.data.verified && !/^\d{3}$/.test(number)) {
    showCardError(card, _("Enter the 3-digit number shown on your login screen."));
    input.focus();
    return;
  }
  card.busy = true;
  setButtons(card, false);
  showCardError(card, "");
  const id = card.data.id;
  const signature = await c.signText(card.account.keyPair.privateKey,
    c.answerMessage(id, decision, number));
  const result = await signedCall(card.account, "POST", `${API}/requests/${id}/answer`,
    { decision, number, signature });
  card.busy = false;
  if (result.ok) {
    finish(card, result.data.status);
  } else if (result.status === 409 || /expired/i.test(result.error)) {
    await settle(id, card);
  } else {
    setButtons(card, true);
    showCardError(card, result.error);
  }
}

function setButtons(card, enabled) {
  for (const button of card.el.querySelectorAll("button")) button.disabled = !enabled;
}

function showCardError(card, text) {
  const result = card.el.querySelector(".r-result");
  result.className = "r-result error";
  result.textContent = text;
  result.hidden = !text;
}

function finish(card, status) {
  if (card.done) return;
  card.done = true;
  const [title, detail] = (RESULTS[status]
    || [N_("Answered"), N_("This request was already answered.")]).map((text) => _(text));
  card.el.querySelector(".r-form").hidden = true;
  card.el.querySelector(".r-expires").hidden = true;
  card.el.classList.add(`status-${status}`);
  const result = card.el.querySelector(".r-result");
  result.className = `r-result ${status === "approved" || status === "used" ? "success" : "error"}`;
  result.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = title;
  result.append(strong, ` ${detail}`);
  result.hidden = false;
  setTimeout(() => {
    card.el.remove();
    state.cards.delete(card.data.id);
    $("no-requests").hidden = state.cards.size > 0;
  }, RESULT_KEEP_MS);
}

function tickRequest(card) {
  if (card.done) return;
  const left = Math.max(0, Math.round(card.expires - now()));
  card.el.querySelector(".r-expires").textContent = _("Expires in %(seconds)s s.",
    { seconds: left });
  if (left === 0 && !card.busy) finish(card, "expired");
}

// --- accounts and passcodes ----------------------------------------------------------------------

async function markGone(account) {
  if (account.gone) return;
  account.gone = true;
  await saveAccount(account);
  render();
}

function renderAccounts() {
  const list = $("accounts");
  list.replaceChildren();
  for (const account of state.accounts) {
    const el = $("account-template").content.firstElementChild.cloneNode(true);
    el.dataset.id = account.id;
    el.querySelector(".a-name").textContent = account.issuer || "UM 2FA";
    el.querySelector(".a-user").textContent = account.username;
    el.querySelector(".a-passcode").hidden = account.gone;
    el.querySelector(".a-gone").hidden = !account.gone;
    el.querySelector(".a-forget").addEventListener("click", async () => {
      await forgetAccount(account.id);
      state.accounts = state.accounts.filter((a) => a !== account);
      render();
    });
    list.append(el);
  }
}

async function tickPasscodes() {
  const t = now();
  for (const account of state.accounts.filter((a) => !a.gone)) {
    const el = document.querySelector(`.account[data-id="${CSS.escape(account.id)}"]`);
    if (!el) continue;
    const code = await c.totp(account.totpKey, t, account.digits, account.period);
    const left = account.period - (Math.floor(t) % account.period);
    el.querySelector(".a-code").textContent = code;
    el.querySelector(".a-left").textContent = _("changes in %(seconds)s s", { seconds: left });
  }
}

// --- page ------------------------------------------------------------------------------------------

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function showProblem(text) {
  $("problem").textContent = text;
  $("problem").hidden = !text;
}

function setOnline(online) {
  $("connection").hidden = online;
}

function isIos() {
  return /iPhone|iPad|iPod/.test(navigator.userAgent)
    || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
}

function standalone() {
  return window.matchMedia("(display-mode: standalone)").matches || navigator.standalone === true;
}

function render(showActivate = false) {
  const has = state.accounts.length > 0;
  const wantsActivate = showActivate || !has || Boolean(activationCode(location.hash));
  $("activate-view").hidden = !wantsActivate;
  $("requests-view").hidden = !has;
  $("accounts-view").hidden = !has;
  $("show-activate").hidden = wantsActivate;
  $("ios-hint").hidden = !(isIos() && !standalone());
  renderAccounts();
  renderNotify();
  tickPasscodes();
}

function readHash() {
  const hash = location.hash;
  const code = activationCode(hash);
  if (code) $("activation-code").value = code;
  const request = hash.match(/#request=([A-Za-z0-9_-]+)/);
  if (request) {
    state.focusId = request[1];
    history.replaceState(null, "", location.pathname);
  }
}

function registerServiceWorker(language) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register(script.dataset.sw, { scope: script.dataset.scope })
    .catch(() => undefined);
  // the notifications speak the app's language: tell the worker which one
  navigator.serviceWorker.ready.then((registration) => {
    if (registration.active) registration.active.postMessage({ type: "language", language });
  }).catch(() => undefined);
  navigator.serviceWorker.addEventListener("message", (event) => {
    const data = event.data || {};
    if (data.type === "open" && data.id) state.focusId = data.id;
    if (data.type === "push" || data.type === "open") poll();
    if (data.type === "notice") pollNotices(true);
  });
}

async function main() {
  const language = await load(script.dataset.scope); // the texts, before any is shown
  $("activate-form").addEventListener("submit", onActivate);
  $("show-activate").addEventListener("click", () => {
    render(true);
    $("activation-code").focus();
  });
  $("notify").addEventListener("click", onNotify);
  registerServiceWorker(language);
  try {
    state.clockOffset = (await getMeta("clockOffset")) || 0;
    state.accounts = (await loadAccounts()).sort((a, b) => a.activatedAt - b.activatedAt);
  } catch {
    showProblem(_("This browser does not let the app keep its key (private browsing?). "
      + "Open the app in a normal window."));
  }
  readHash();
  render();
  $("loading").hidden = true;
  window.addEventListener("hashchange", () => {
    readHash();
    render();
    poll();
  });
  setInterval(() => {
    tickPasscodes();
    for (const card of state.cards.values()) tickRequest(card);
  }, 1000);
  setInterval(() => {
    if (document.visibilityState === "visible") poll();
  }, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") poll();
  });
  poll();
  if (pushSupported() && Notification.permission === "granted") ensureSubscription();
}

main();
