// The companion app's texts in the page's language (docs/languages.md). The server renders
// <html lang> from the person's choice (cookie, Accept-Language); the catalog for it comes as
// JSON from /app/strings/<language>.json (made from translations/*/companion.po). Texts are
// marked _("...") so that `scripts/i18n extract` finds them; placeholders are %(name)s.

let strings = {};

// "zh-Hant" (the page's tag) -> "zh_Hant" (the catalog's name).
export const language = () => (document.documentElement.lang || "en").replace(/-/g, "_");

export function fill(text, params = {}) {
  return text.replace(/%\((\w+)\)[sd]/g, (all, name) => (name in params
    ? String(params[name]) : all));
}

// Marks a text kept in a constant; _ translates it where it is shown.
export const N_ = (msgid) => msgid;

export function _(msgid, params = {}) {
  const text = Object.prototype.hasOwnProperty.call(strings, msgid) && strings[msgid]
    ? strings[msgid] : msgid;
  return fill(text, params);
}

// Load the catalog (English needs none). Without a network the service worker answers from
// its cache; failing that the app speaks English rather than not at all.
export async function load(scope, lang = language()) {
  if (!lang || lang === "en") return "en";
  try {
    const response = await fetch(`${scope}strings/${encodeURIComponent(lang)}.json`,
      { credentials: "omit" });
    if (response.ok) strings = await response.json();
  } catch {
    strings = {};
  }
  return lang;
}
