// Sign-in with a user credential (.creds): the seed is read and used here
// only. The page asks for a nonce, signs it with the seed (WebCrypto
// Ed25519) and sends the credential's JWT and the signature.
"use strict";

function armoured(text, what) {
  const begin = text.indexOf("-----BEGIN " + what + "-----");
  if (begin < 0) return null;
  const start = text.indexOf("\n", begin) + 1;
  const end = text.indexOf("------END " + what + "------", start);
  return end < 0 ? null : text.slice(start, end).trim();
}

// RFC 4648 base32 without padding, as nkeys writes seeds.
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const out = [];
  let bits = 0, value = 0;
  for (const c of text.replace(/=+$/, "")) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error("the seed is not base32");
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
  }
  return new Uint8Array(out);
}

function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }

async function signIn(file) {
  const text = await file.text();
  const jwt = armoured(text, "NATS USER JWT");
  const seed = armoured(text, "USER NKEY SEED");
  if (!jwt || !seed) throw new Error("this is not a .creds file");
  const decoded = base32(seed);
  if (decoded.length !== 36) throw new Error("the seed is not an nkey seed");
  // PKCS #8 for an Ed25519 private key: a fixed header, then the 32-byte seed.
  const header = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
  const pkcs8 = new Uint8Array([...header, ...decoded.slice(2, 34)]);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  const asked = await fetch("/signin/nonce", { method: "POST" });
  const { nonce, error } = await asked.json();
  if (!asked.ok) throw new Error(error || "no challenge");
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, new TextEncoder().encode(nonce));
  const answer = await fetch("/signin/creds", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jwt, nonce, signature: hex(new Uint8Array(signature)) }),
  });
  if (!answer.ok) throw new Error((await answer.json()).error || "refused");
  location.href = "/";
}

document.getElementById("creds-signin").addEventListener("click", () => {
  const file = document.getElementById("creds").files[0];
  const shown = document.getElementById("creds-error");
  shown.textContent = "";
  if (!file) { shown.textContent = "choose your .creds file first"; return; }
  signIn(file).catch((e) => { shown.textContent = e.message; });
});
