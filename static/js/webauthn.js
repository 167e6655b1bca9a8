// Security keys and passkeys (docs/passkeys.md): the WebAuthn ceremonies. A button with
// data-webauthn="register" or "sign-in" fetches its options (data-options, JSON), asks the
// browser for the credential, posts the answer (data-verify, JSON) and follows the server's
// {"redirect": ...}; an {"error": ...} is shown in #webauthn-error. Loaded from a file: the CSP
// forbids inline script. The server keeps the challenge; nothing secret is in the page.
(() => {
  "use strict";

  const b64urlToBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };
  const bytesToB64url = (buffer) => {
    let text = "";
    new Uint8Array(buffer).forEach((b) => { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const creationOptions = (json) => {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: b64urlToBytes(json.challenge),
      user: { ...json.user, id: b64urlToBytes(json.user.id) },
      excludeCredentials: (json.excludeCredentials || []).map(
        (c) => ({ ...c, id: b64urlToBytes(c.id) })),
    };
  };
  const requestOptions = (json) => {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: b64urlToBytes(json.challenge),
      allowCredentials: (json.allowCredentials || []).map(
        (c) => ({ ...c, id: b64urlToBytes(c.id) })),
    };
  };
  const credentialJSON = (credential) => {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const r = credential.response;
    const response = { clientDataJSON: bytesToB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = bytesToB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = bytesToB64url(r.authenticatorData);
      response.signature = bytesToB64url(r.signature);
      if (r.userHandle) response.userHandle = bytesToB64url(r.userHandle);
    }
    return {
      id: credential.id, rawId: bytesToB64url(credential.rawId), type: credential.type,
      response, clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment,
    };
  };

  const csrfToken = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  };
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(),
                 Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) return response.json();
    if (response.redirected) {  // sent to the sign-in or the prompt again: go there
      window.location.assign(response.url);
      return null;
    }
    return { error: "" };  // e.g. too many attempts: the button's own failure text
  };

  // The error is shown under the button and tied to it (aria-describedby), which keeps the focus.
  let current = null;
  const showError = (message) => {
    const box = document.getElementById("webauthn-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    if (current) current.setAttribute("aria-describedby", box.id);
  };

  const run = async (button) => {
    const register = button.dataset.webauthn === "register";
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError(button.dataset.unsupported);
      return;
    }
    const options = await post(button.dataset.options);
    if (!options) return;
    if ("error" in options) {
      showError(options.error || button.dataset.failed);
      return;
    }
    let credential;
    try {
      credential = register
        ? await navigator.credentials.create({ publicKey: creationOptions(options) })
        : await navigator.credentials.get({ publicKey: requestOptions(options) });
    } catch (e) {
      showError(button.dataset.failed);
      return;
    }
    const remember = document.querySelector("input[name=remember]");
    const answer = await post(button.dataset.verify, {
      credential: credentialJSON(credential), remember: Boolean(remember && remember.checked),
    });
    if (!answer) return;
    if (answer.redirect) {
      window.location.assign(answer.redirect);
    } else {
      showError(answer.error || button.dataset.failed);
    }
  };

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-webauthn]");
    if (!button || button.disabled) return;
    event.preventDefault();
    current = button;
    button.disabled = true;  // a disabled button loses the focus: it gets it back below
    run(button).catch(() => showError(button.dataset.failed))
      .finally(() => {
        button.disabled = false;
        const active = document.activeElement;
        if (button.isConnected && (!active || active === document.body)) button.focus();
      });
  });
})();
