// Places this service's forms on another site's page: one <script> tag per form, e.g.
//   <script src="{{ base }}/embed.js" data-form="signup" async></script>
//   <script src="{{ base }}/embed.js" data-action="SLUG" data-source="CODE" data-theme="dark" data-lang="es" async></script>
// (data-lang: the form's language, one of {{ languages|join(", ") }}; without it, the visitor's browser chooses.)
// Each tag gets an <iframe> right after it; the frame reports its height and this keeps it.
(() => {
  "use strict";
  const BASE = {{ base|tojson }};
  const ORIGIN = {{ origin|tojson }};
  const LANGUAGES = {{ languages|tojson }};
  // The frame's title (read by screen readers) in each language, for a form in that language.
  const TITLES = {{ titles|tojson }};
  const registry = (window.__alertsEmbeds = window.__alertsEmbeds || { frames: {}, count: 0, listening: false });
  const valid = (value, pattern) => (value && pattern.test(value) ? value : "");

  const place = (script) => {
    if (script.dataset.alertsPlaced) return;
    script.dataset.alertsPlaced = "1";
    const slug = valid(script.dataset.action, /^[A-Za-z0-9_-]{1,120}$/);
    if (!slug && script.dataset.form !== "signup") return;
    registry.count += 1;
    const id = "f" + registry.count;
    const url = new URL(BASE + (slug ? "/embed/actions/" + encodeURIComponent(slug) : "/embed/signup"));
    const source = valid(script.dataset.source, /^[A-Za-z0-9._-]{1,64}$/);
    const theme = valid(script.dataset.theme, /^(light|dark)$/);
    const accent = valid((script.dataset.accent || "").replace(/^#/, ""), /^[0-9a-fA-F]{6}$/);
    const lang = LANGUAGES.includes(script.dataset.lang) ? script.dataset.lang : "";
    if (source) url.searchParams.set("source", source);
    if (theme) url.searchParams.set("theme", theme);
    if (accent) url.searchParams.set("accent", accent);
    if (lang) url.searchParams.set("lang", lang);
    url.searchParams.set("frame", id);
    const frame = document.createElement("iframe");
    frame.src = url.toString();
    const browser = LANGUAGES.find((l) => (navigator.language || "").toLowerCase().split("-")[0] === l);
    const words = TITLES[lang || browser] || TITLES[LANGUAGES[0]];
    frame.title = script.dataset.title || (slug ? words.action : words.signup);
    frame.style.cssText = "display:block;width:100%;max-width:640px;border:0;height:" +
      (slug ? 620 : 300) + "px;overflow:hidden";
    frame.setAttribute("scrolling", "no");
    registry.frames[id] = frame;
    script.parentNode.insertBefore(frame, script.nextSibling);
  };

  if (!registry.listening) {
    registry.listening = true;
    window.addEventListener("message", (event) => {
      if (event.origin !== ORIGIN) return;
      const data = event.data;
      if (!data || typeof data !== "object" || data.type !== "alerts-embed:height") return;
      const frame = registry.frames[data.frame];
      if (!frame || frame.contentWindow !== event.source) return;
      const height = Number(data.height);
      if (Number.isFinite(height) && height > 0 && height < 10000) frame.style.height = Math.ceil(height) + "px";
    });
  }
  const mine = (s) => s.src && s.src.split("?")[0] === BASE + "/embed.js";
  if (document.currentScript && mine(document.currentScript)) place(document.currentScript);
  // An async script may run after others of its kind: place every tag not placed yet.
  document.querySelectorAll("script[src]").forEach((s) => { if (mine(s)) place(s); });
})();
