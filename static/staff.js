/* Staff pages: confirm before destructive buttons, and the live progress of a sending alert. */
(function () {
  "use strict";

  // <form data-confirm="..."> asks before submitting (no inline handlers: the CSP forbids them).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // A form sent back with an error: bring its first problem into view.
  var problem = document.querySelector(".has-error");
  if (problem) {
    problem.scrollIntoView({ block: "center" });
    var input = problem.querySelector("input, textarea, select");
    if (input) {
      input.focus();
    }
  }

  var panel = document.getElementById("progress");
  if (!panel) {
    return;
  }
  var url = panel.getAttribute("data-status-url");
  var shownState = panel.getAttribute("data-state");
  var numbers = new Intl.NumberFormat();
  var STOP = {};

  function set(name, text) {
    var el = panel.querySelector('[data-field="' + name + '"]');
    if (el) {
      el.textContent = text;
    }
  }

  // The same wording as the server's `duration` filter.
  function duration(seconds) {
    if (seconds === null || seconds === undefined) {
      return "—";
    }
    seconds = Math.floor(seconds);
    if (seconds < 60) {
      return seconds + " s";
    }
    if (seconds < 3600) {
      return Math.round(seconds / 60) + " min";
    }
    return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
  }

  function render(s) {
    set("percent", String(s.percent));
    set("done", numbers.format(s.done));
    set("total", numbers.format(s.total));
    set("queued", numbers.format(s.queued + s.sending));
    set("sent", numbers.format(s.sent));
    set("failed", numbers.format(s.failed));
    set("skipped", numbers.format(s.skipped));
    set("rate", s.rate_per_second + "/s");
    set("seconds_left", duration(s.seconds_left));
    if (s.pace) {
      set("pace", s.pace.why);
    }
    var bar = panel.querySelector('[data-field="bar"]');
    if (bar) {
      bar.value = s.percent;
      bar.textContent = s.percent + "%";
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) {
          set("live", "Your session has ended. Reload the page to log in again.");
          throw STOP;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (s) {
        render(s);
        if (s.state !== shownState) {
          // Sent, paused, cancelled: the buttons change too, so show the page afresh.
          window.location.reload();
          return;
        }
        set("live", s.state === "paused" ? "Paused." : "Updates every second.");
        window.setTimeout(poll, 1000);
      })
      .catch(function (error) {
        if (error !== STOP) {
          set("live", "Lost contact with the server; retrying…");
          window.setTimeout(poll, 3000);
        }
      });
  }

  if (shownState === "sending" || shownState === "paused") {
    window.setTimeout(poll, 1000);
  }
})();
