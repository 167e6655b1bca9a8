"""axe-core in the browser tests: every page state a test reaches meets WCAG 2.1 A and AA.

`check_axe(page, label)` runs axe-core (tests/.vendor/axe.min.js, fetched from the npm registry by
`scripts/setup --test`, never served by the app) on the page as it is and fails with the list of
violations. `AxeWatch.install()` makes that happen by itself: before every action a test takes
on a page (click, fill, check, goto, a key press, ...) and when a page or its context closes, the
state the page has settled in is checked, once per distinct state. A state is the page's
structure (elements, their roles, classes, ids, languages, what is hidden), not its words or
values, at a narrow or a wide viewport: the same sign-in page reached by forty tests is checked
once, each language's version of it once. The script is evaluated through the DevTools protocol,
so the pages' Content-Security-Policy stays as it is. See docs/accessibility.md.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import BrowserContext, Error, Keyboard, Locator, Page

AXE = Path(__file__).resolve().parents[1] / ".vendor" / "axe.min.js"
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
NARROW = 600  # px: below this the page's layout is the phone's

# The page's structure, hashed in the page (64 bits): what axe's rules look at, without the
# words, values, addresses and tokens that differ from one test to the next. None: not a page
# of ours to check (about:blank, an error page of Chromium) or not settled (loading, mid-swap).
STATE_JS = """
(narrow) => {
  if (!/^https?:$/.test(location.protocol) || document.readyState !== 'complete') return null;
  if (document.querySelector('.htmx-swapping, .htmx-settling')) return null;
  const words = new Set(['alt', 'title', 'placeholder', 'aria-label', 'aria-description',
    'aria-placeholder', 'aria-roledescription', 'aria-valuetext', 'label', 'summary']);
  const kept = new Set(['id', 'class', 'role', 'type', 'lang', 'hidden', 'disabled', 'for',
    'tabindex', 'open', 'scope', 'colspan', 'rowspan', 'headers', 'autocomplete', 'style',
    'inputmode', 'required', 'readonly', 'multiple', 'dir']);
  const out = [innerWidth < narrow ? 'narrow' : 'wide'];
  const walker = document.createTreeWalker(document.documentElement,
    NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
  for (let node = walker.currentNode; node; node = walker.nextNode()) {
    if (node.nodeType === Node.TEXT_NODE) {
      if (node.data.trim()) out.push('#');
      continue;
    }
    const attrs = [];
    for (const {name, value} of node.attributes) {
      if (words.has(name)) attrs.push(name + (value.trim() ? '+' : '-'));
      else if (kept.has(name) || name.startsWith('aria-')) {
        const v = name === 'class'
          ? value.split(/\\s+/).filter(c => c && !c.startsWith('htmx-')).sort().join(' ')
          : value;
        attrs.push(name + '=' + v.replace(/[0-9]+/g, '0'));
      } else attrs.push(name);
    }
    out.push('<' + node.localName + ' ' + attrs.sort().join(' '));
  }
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  const text = out.join('\\n');
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
  }
  return (h1 >>> 0).toString(16) + (h2 >>> 0).toString(16);
}
"""

RUN_JS = """
async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                          resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.map(t => [].concat(t).join(' >> ')).join(' '),
                              html: n.html, summary: n.failureSummary || ''})),
  }));
}
"""

# A page that went away while it was being looked at: its next state is checked instead.
GONE = ("Execution context was destroyed", "navigat", "Target page, context or browser has been"
        " closed", "Cannot find context with specified id")


class AxeViolations(AssertionError):
    pass


@functools.cache
def axe_source() -> str:
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run ./scripts/setup --test")
    return AXE.read_text()


def run_axe(page: Page) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        page.evaluate(axe_source())
    return page.evaluate(RUN_JS, list(TAGS))


def describe(violations: list[dict], url: str, label: str) -> str:
    lines = [f"axe-core: {len(violations)} WCAG 2.1 A/AA violation(s) on {url}"
             + (f" ({label})" if label else "")]
    for v in violations:
        lines.append(f"  {v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            html = " ".join(node["html"].split())
            html = html if len(html) <= 100 else html[:99] + "…"
            summary = " ".join(node["summary"].split()).removeprefix("Fix any of the following: ")
            lines.append(f"    - {node['target']} {html}: {summary}")
    return "\n".join(lines)


def check_axe(page: Page, label: str = "") -> None:
    """Fail, with the rule, its impact, the elements and the page, if axe finds a violation."""
    violations = run_axe(page)
    if violations:
        raise AxeViolations(describe(violations, page.url, label))


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]


LOCATOR_ACTIONS = ("check", "clear", "click", "dblclick", "dispatch_event", "drag_to", "fill",
                   "press", "press_sequentially", "select_option", "set_checked",
                   "set_input_files", "tap", "type", "uncheck")
PAGE_ACTIONS = ("check", "click", "dblclick", "dispatch_event", "fill", "go_back", "go_forward",
                "goto", "press", "reload", "select_option", "set_checked", "set_input_files",
                "tap", "type", "uncheck")
KEYBOARD_ACTIONS = ("down", "insert_text", "press", "type")


@dataclass
class AxeWatch:
    """The states already checked in this test session, and what checking them cost."""

    seen: set[str] = field(default_factory=set)
    checked: int = 0
    repeats: int = 0
    seconds: float = 0.0
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def state(self, page: Page) -> str | None:
        try:
            return page.evaluate(STATE_JS, NARROW)
        except Error as e:
            if any(g in e.message for g in GONE):
                return None
            raise

    def settle(self, page: Page, moment: str) -> None:
        """Check the page's state once, before `moment` (what the test is about to do)."""
        if page.is_closed():
            return
        started = time.perf_counter()
        try:
            key = self.state(page)
            if key is None:
                return
            if key in self.seen:
                self.repeats += 1
                return
            try:
                violations = run_axe(page)
            except Error as e:
                if any(g in e.message for g in GONE):
                    return
                raise
            self.seen.add(key)
            self.checked += 1
            if violations:
                raise AxeViolations(describe(violations, page.url,
                                             f"{_current_test()}, before {moment}"))
        finally:
            self.seconds += time.perf_counter() - started

    def install(self) -> None:
        """Check before every action on a Locator, a Page or its keyboard, and on closing."""
        watch = self

        def wrap(cls: type, name: str, page_of: Callable) -> None:
            original = getattr(cls, name)

            @functools.wraps(original)
            def action(self, *args, **kwargs):
                page = page_of(self)
                if page is None:
                    return original(self, *args, **kwargs)
                try:
                    watch.settle(page, f"{cls.__name__}.{name} {_what(self, args)}")
                except BaseException:
                    if name == "close":  # a page closes even when its last state fails
                        original(self, *args, **kwargs)
                    raise
                return original(self, *args, **kwargs)

            setattr(cls, name, action)
            self._undo.append(lambda: setattr(cls, name, original))

        for name in LOCATOR_ACTIONS:
            wrap(Locator, name, lambda loc: loc.page)
        for name in (*PAGE_ACTIONS, "close"):
            wrap(Page, name, lambda page: page)
        for name in KEYBOARD_ACTIONS:
            wrap(Keyboard, name, lambda keys: getattr(keys, "_axe_page", None))

        keyboard = Page.keyboard

        def keyboard_of(page: Page) -> Keyboard:
            keys = keyboard.fget(page)
            keys._axe_page = page
            return keys

        Page.keyboard = property(keyboard_of)
        self._undo.append(lambda: setattr(Page, "keyboard", keyboard))

        close = BrowserContext.close

        @functools.wraps(close)
        def close_context(context, *args, **kwargs):
            try:
                for page in context.pages:
                    watch.settle(page, "BrowserContext.close")
            finally:
                close(context, *args, **kwargs)

        BrowserContext.close = close_context
        self._undo.append(lambda: setattr(BrowserContext, "close", close))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def summary(self) -> str:
        return (f"axe-core {axe_version()}: {self.checked} page states checked "
                f"({self.repeats} repeats skipped) in {self.seconds:.1f} s")


def _what(target, args: tuple) -> str:
    if isinstance(target, Locator):
        return repr(target)
    return repr(args[0])[:80] if args else ""


def axe_version() -> str:
    first = axe_source().split("\n", 1)[0]
    return first.removeprefix("/*! axe ").strip()
