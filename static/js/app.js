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
