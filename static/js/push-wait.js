// A login page waiting for its push (templates/prompt/_push_status.html, _push_countdown.html).
// The push event stream (htmx's SSE extension) says "answered" the moment the push stops
// waiting, and the countdown then asks the status route at once (its "sse:answered" trigger).
// While the stream is open the countdown's one-second polls are skipped, but for one every
// SAFETY_POLL_MS, and the seconds are counted down here; while it is not open (not offered,
// not open yet, failed, reconnecting) every poll goes: the page works as it did without the
// stream. Once the stream has said "answered" (and closed), polls wait QUIET_MS: the ask it
// made is finishing the login, and a poll behind it would only find the push gone.
(() => {
  const SAFETY_POLL_MS = 30000;
  const QUIET_MS = 3000;
  let streaming = false;
  let lastPoll = Date.now();
  let quietUntil = 0;
  const shownAt = new WeakMap();

  if (window.htmx) {
    // No cookie goes to the stream: its signed token is all it reads, and it may live on
    // another origin (`um2fa serve` runs it on a port of its own).
    htmx.createEventSource = (url) => new EventSource(url);
  }
  document.addEventListener("htmx:sseOpen", () => { streaming = true; });
  document.addEventListener("htmx:sseError", () => { streaming = false; });
  document.addEventListener("htmx:sseClose", (event) => {
    streaming = false;
    if (event.detail && event.detail.type === "message") quietUntil = Date.now() + QUIET_MS;
  });

  document.addEventListener("htmx:confirm", (event) => {
    const countdown = event.detail.elt;
    if (!countdown || countdown.id !== "push-countdown") return;
    const now = Date.now();
    // The first poll comes a second after the countdown was drawn.
    if (!shownAt.has(countdown)) shownAt.set(countdown, now - 1000);
    const left = Math.max(0, Number(countdown.dataset.left)
                             - Math.round((now - shownAt.get(countdown)) / 1000));
    const heard = Boolean(event.detail.triggeringEvent);  // sse:answered (a poll has none)
    const quiet = now < quietUntil;
    if (heard || (!quiet && (!streaming || left === 0 || now - lastPoll >= SAFETY_POLL_MS))) {
      lastPoll = now;
      return;
    }
    event.preventDefault();
    // The catalogs' plural rules (en, pt: one for 1, other otherwise; zh_Hant: one form).
    const sentence = left === 1 ? countdown.dataset.one : countdown.dataset.other;
    const shown = countdown.querySelector(".push-left");
    if (sentence && shown) shown.textContent = sentence.replace("{n}", String(left));
  });
})();
