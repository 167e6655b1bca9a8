// UM 2FA page behaviour. Loaded from a file: the CSP forbids inline script.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.dataset.value || source.dataset.value
                                || source.textContent.trim()).then(() => {
    button.textContent = button.dataset.copied || button.textContent;
  });
});

// The SAML Response goes to the service provider by an automatic POST (HTTP-POST binding).
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-autosubmit]");
  if (form) form.submit();
});

// Focus after htmx swaps (issue 17): what a swap shows takes the focus, and the focus is never
// left on <body>. In the swapped content, in this order: the element named by the triggering
// element's data-return-focus ("Cancel" gives it back to the button that opened a dialog), the
// first field marked aria-invalid, the first [data-autofocus] or [autofocus]. A
// data-autofocus="soft" element (a push's final status) takes it only from <body>. When the
// swap took away the focused element and nothing claims the focus, the new content takes it.
(() => {
  "use strict";

  const focusOn = (element) => {
    if (!element.matches("a[href], button, input, select, textarea, [tabindex]")) {
      element.setAttribute("tabindex", "-1");
    }
    element.focus();
  };
  const lost = () => !document.activeElement || document.activeElement === document.body
                     || !document.activeElement.isConnected;
  const first = (root, selector) => (root.matches(selector) ? root
                                                            : root.querySelector(selector));
  let hadFocus = false;

  document.addEventListener("htmx:beforeSwap", (event) => {
    const detail = event.detail;
    const target = detail.target;
    // htmx swaps no 4xx answer; one that is the fragment asked for (a refused rename or
    // removal: the device list with its error) is shown, so that its error is seen.
    const status = detail.xhr ? detail.xhr.status : 0;
    if (!detail.shouldSwap && status >= 400 && status < 500 && target && target.id
        && (detail.serverResponse || "").includes(`id="${target.id}"`)) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
    hadFocus = Boolean(target && target.contains(document.activeElement));
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    const root = event.target;
    if (!(root instanceof Element) || !root.isConnected) return;
    const config = event.detail && event.detail.requestConfig;
    const trigger = config && config.elt;
    const back = trigger && trigger.dataset && trigger.dataset.returnFocus;
    const wanted = (back && document.getElementById(back))
      || first(root, "[aria-invalid='true']") || first(root, "[data-autofocus], [autofocus]");
    if (wanted && (wanted.dataset.autofocus !== "soft" || lost())) {
      focusOn(wanted);
    } else if (hadFocus && lost()) {
      focusOn(root);
    }
    hadFocus = false;
  });

  // A page that shows a field's error puts the focus on that field.
  document.addEventListener("DOMContentLoaded", () => {
    const invalid = document.querySelector("main [aria-invalid='true']");
    if (invalid) invalid.focus();
  });

  // Escape in an inline dialog ("Remove?") is its "Cancel".
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    const dialog = event.target.closest && event.target.closest("[role=alertdialog]");
    const cancel = dialog && dialog.querySelector("[data-dialog-cancel]");
    if (!cancel) return;
    event.preventDefault();
    cancel.click();
  });
})();

// A table wider than its box scrolls sideways inside it (site.css, narrow screens): then it
// takes the keyboard's focus, so the arrow keys can scroll it too; a table that fits does not.
function focusScrollingTables() {
  for (const table of document.querySelectorAll("table.data")) {
    if (table.scrollWidth > table.clientWidth) table.tabIndex = 0;
    else table.removeAttribute("tabindex");
  }
}
document.addEventListener("DOMContentLoaded", focusScrollingTables);
document.addEventListener("htmx:afterSettle", focusScrollingTables);
window.addEventListener("resize", focusScrollingTables);
