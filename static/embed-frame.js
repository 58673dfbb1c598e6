// Inside an embedded form's frame: tell the page around it how tall the form is, and solve the
// form's proof-of-work challenge (ALTCHA's SHA-256 scheme) so the post can show a person sent it.
(() => {
  "use strict";
  const frame = document.body.dataset.frame || "";

  // -- the height, for embed.js on the host page (it checks where the message comes from) --
  const tell = () => {
    if (window.parent === window) return;
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ type: "alerts-embed:height", frame, height }, "*");
  };
  if ("ResizeObserver" in window) new ResizeObserver(tell).observe(document.documentElement);
  window.addEventListener("load", tell);
  tell();

  // -- SHA-256 (FIPS 180-4) of short ASCII inputs, in plain JavaScript (about 1 µs a try):
  //    several times faster than one crypto.subtle call per try, and no secure context needed --
  const K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  // Int32Array throughout: V8 keeps 32-bit integers unboxed, where words above 2^31 read from a
  // Uint32Array become doubles (half the speed).
  const H0 = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const W = new Int32Array(64);
  const out = new Int32Array(8);
  let buf = new Uint8Array(128);  // the padded message, reused from one try to the next
  const sha256 = (bytes, length) => {  // the digest of bytes[0:length] into `out`
    const blocks = (length + 9 + 63) >> 6;
    const size = blocks * 64;
    if (buf.length < size) buf = new Uint8Array(size);
    buf.set(bytes.subarray(0, length));
    buf.fill(0, length, size);
    buf[length] = 0x80;
    const bits = length * 8;
    buf[size - 4] = bits >>> 24; buf[size - 3] = (bits >>> 16) & 255;
    buf[size - 2] = (bits >>> 8) & 255; buf[size - 1] = bits & 255;
    let h0 = H0[0], h1 = H0[1], h2 = H0[2], h3 = H0[3], h4 = H0[4], h5 = H0[5], h6 = H0[6], h7 = H0[7];
    for (let block = 0; block < blocks; block += 1) {
      for (let i = 0, j = block * 64; i < 16; i += 1, j += 4) {
        W[i] = (buf[j] << 24) | (buf[j + 1] << 16) | (buf[j + 2] << 8) | buf[j + 3];
      }
      for (let i = 16; i < 64; i += 1) {
        const x = W[i - 15], y = W[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let i = 0; i < 64; i += 1) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    out[0] = h0; out[1] = h1; out[2] = h2; out[3] = h3; out[4] = h4; out[5] = h5; out[6] = h6; out[7] = h7;
    return out;
  };

  // -- the proof of work: find n with SHA-256(salt + n) == challenge, 0 <= n <= maxnumber,
  //    a slice at a time so the page stays responsive --
  const solve = (ch) => new Promise((resolve) => {
    const want = new Int32Array(8);
    for (let i = 0; i < 8; i += 1) want[i] = parseInt(ch.challenge.slice(i * 8, i * 8 + 8), 16);
    const salt = new TextEncoder().encode(ch.salt);
    const bytes = new Uint8Array(salt.length + 16);
    bytes.set(salt);
    let n = 0;
    const slice = () => {
      const stop = Math.min(ch.maxnumber, n + 20000);
      for (; n <= stop; n += 1) {
        const digits = String(n);
        for (let i = 0; i < digits.length; i += 1) bytes[salt.length + i] = digits.charCodeAt(i);
        const got = sha256(bytes, salt.length + digits.length);
        if (got[0] === want[0] && got[1] === want[1] && got[2] === want[2] && got[3] === want[3] &&
            got[4] === want[4] && got[5] === want[5] && got[6] === want[6] && got[7] === want[7]) {
          resolve(btoa(JSON.stringify({ algorithm: ch.algorithm, challenge: ch.challenge, number: n,
                                        salt: ch.salt, signature: ch.signature })));
          return;
        }
      }
      if (n > ch.maxnumber) resolve("");
      else setTimeout(slice, 0);
    };
    slice();
  });

  document.querySelectorAll("form[data-pow]").forEach((form) => {
    const field = form.querySelector("input[name=altcha]");
    const status = form.querySelector(".pow-status");
    if (!field) return;
    const solved = solve(JSON.parse(field.dataset.challenge)).then((payload) => { field.value = payload; });
    let sending = false;
    form.addEventListener("submit", (event) => {
      if (field.value || sending) return;
      event.preventDefault();
      sending = true;
      if (status) status.textContent = status.dataset.checking || "Checking…";
      solved.then(() => { if (status) status.textContent = ""; form.submit(); });
    });
  });
})();
