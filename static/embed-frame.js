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

  // -- the proof of work: find n with SHA-256(salt + n) == challenge, 0 <= n <= maxnumber --
  const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  const solve = async (ch) => {
    const encoder = new TextEncoder();
    const batch = 1000;
    for (let start = 0; start <= ch.maxnumber; start += batch) {
      const tries = [];
      for (let n = start; n < start + batch && n <= ch.maxnumber; n += 1) {
        tries.push(crypto.subtle.digest("SHA-256", encoder.encode(ch.salt + n)).then((d) => [n, hex(d)]));
      }
      for (const [n, digest] of await Promise.all(tries)) {
        if (digest === ch.challenge) {
          return btoa(JSON.stringify({ algorithm: ch.algorithm, challenge: ch.challenge, number: n,
                                       salt: ch.salt, signature: ch.signature }));
        }
      }
    }
    return "";
  };

  document.querySelectorAll("form[data-pow]").forEach((form) => {
    const field = form.querySelector("input[name=altcha]");
    const status = form.querySelector(".pow-status");
    if (!field || !window.crypto || !crypto.subtle) return;
    const solved = solve(JSON.parse(field.dataset.challenge)).then((payload) => { field.value = payload; });
    let sending = false;
    form.addEventListener("submit", (event) => {
      if (field.value || sending) return;
      event.preventDefault();
      sending = true;
      if (status) status.textContent = "Checking…";
      solved.then(() => { if (status) status.textContent = ""; form.submit(); });
    });
  });
})();
