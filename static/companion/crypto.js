// The companion app's cryptography, all WebCrypto: the device key (ECDSA P-256, made
// non-extractable on the phone), the messages it signs (as app/core/device_keys.py spells them)
// and the TOTP passcode (RFC 6238) from a non-extractable HMAC-SHA1 key.

const encoder = new TextEncoder();
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function b64url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64urlDecode(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function base32Decode(text) {
  const clean = text.toUpperCase().replace(/[\s=-]/g, "");
  const out = [];
  let bits = 0;
  let value = 0;
  for (const char of clean) {
    const index = BASE32.indexOf(char);
    if (index < 0) throw new Error("The passcode key is not base32.");
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return new Uint8Array(out);
}

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

// --- what is signed (app/core/device_keys.py) ---------------------------------------------

export function callMessage(method, path, timestamp, bodyHashHex) {
  return ["UM2FA-CALL-1", method.toUpperCase(), path, timestamp, bodyHashHex].join("\n");
}

export function answerMessage(requestId, decision, number) {
  return ["UM2FA-ANSWER-1", requestId, decision, number].join("\n");
}

export function activationMessage(code) {
  return "UM2FA-ACTIVATE-1\n" + code;
}

// --- the device key ------------------------------------------------------------------------

const ECDSA = { name: "ECDSA", namedCurve: "P-256" };

export function newDeviceKey() {
  // extractable=false: the private key can sign but can never be read out of the browser.
  // (WebCrypto keeps the public half exportable.)
  return crypto.subtle.generateKey(ECDSA, false, ["sign", "verify"]);
}

export async function exportPublicKey(keyPair) {
  return b64url(await crypto.subtle.exportKey("spki", keyPair.publicKey));
}

// WebCrypto's ECDSA signature is IEEE P1363 (r || s, 64 bytes), which the server expects.
export async function signText(privateKey, text) {
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey,
    encoder.encode(text));
  return b64url(signature);
}

// --- TOTP ------------------------------------------------------------------------------------

export function importTotpKey(base32Secret, algorithm = "SHA1") {
  const hash = { SHA1: "SHA-1", SHA256: "SHA-256", SHA512: "SHA-512" }[algorithm];
  if (!hash) throw new Error("Unsupported passcode algorithm.");
  return crypto.subtle.importKey("raw", base32Decode(base32Secret), { name: "HMAC", hash },
    false, ["sign"]);
}

export async function totp(key, unixSeconds, digits = 6, period = 30) {
  const counter = Math.floor(unixSeconds / period);
  const message = new DataView(new ArrayBuffer(8));
  message.setUint32(0, Math.floor(counter / 2 ** 32));
  message.setUint32(4, counter >>> 0);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, message.buffer));
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16)
    | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(binary % 10 ** digits).padStart(digits, "0");
}
