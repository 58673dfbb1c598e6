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

  // On a phone a table's rows are stacked cards (site.css): label each cell with its column.
  Array.prototype.forEach.call(document.querySelectorAll("table.table"), function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (row) {
      Array.prototype.forEach.call(row.children, function (cell, i) {
        if (heads[i] && !cell.hasAttribute("data-label")) {
          cell.setAttribute("data-label", heads[i]);
        }
      });
    });
  });

  // The compose page: the audience's size, live as the rules change, and saved audiences.
  (function () {
    var box = document.querySelector(".audience-count");
    if (!box) {
      return;
    }
    var form = box.closest("form");
    var numbers = new Intl.NumberFormat();
    var timer = null;
    var seq = 0;
    var RULES = ["actions", "languages", "only_signers_of", "except_signers_of", "topics", "joined_after", "joined_before",
                 "source", "engagement", "engaged_days", "include_acted", "only_writers", "only_callers", "postal_prefixes", "has_first_name"];
    var FIELD = "field.";  // a custom field's rule: field.<key>=<value>

    function show(data) {
      box.textContent = "";
      if (data.error) {
        var err = document.createElement("span");
        err.className = "field-error";
        err.textContent = data.error;
        box.appendChild(err);
        return;
      }
      var strong = document.createElement("strong");
      strong.textContent = numbers.format(data.size);
      box.appendChild(strong);
      box.appendChild(document.createTextNode(" " + (data.size === 1 ? "person" : "people") + ": " +
                                              data.description));
    }

    function refresh() {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, name) {
        if (RULES.indexOf(name) >= 0 || name.indexOf(FIELD) === 0) {
          params.append(name, value);
        }
      });
      if (box.getAttribute("data-alert-id")) {
        params.append("alert_id", box.getAttribute("data-alert-id"));
      }
      var mine = ++seq;
      box.classList.add("is-busy");
      fetch(box.getAttribute("data-url") + "?" + params.toString(),
            { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (mine === seq) {
            box.classList.remove("is-busy");
            show(data);
          }
        })
        .catch(function () {
          box.classList.remove("is-busy");
        });
    }

    function soon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 200);
    }

    function apply(rules) {
      RULES.forEach(function (name) {
        if (name === "actions") {
          return;
        }
        var value = rules[name];
        form.querySelectorAll('[name="' + name + '"]').forEach(function (el) {
          if (el.type === "checkbox") {
            el.checked = Array.isArray(value) ? value.indexOf(el.value) >= 0 : Boolean(value);
          } else if (name === "engagement") {
            el.value = rules.engaged_days ? (rules.engaged === false ? "not-engaged" : "engaged") : "";
          } else if (name === "engaged_days") {
            el.value = rules.engaged_days || 90;
          } else if (name === "postal_prefixes") {
            el.value = (value || []).join(", ");
          } else if (name === "has_first_name") {
            el.value = value === true ? "yes" : value === false ? "no" : "";
          } else {
            el.value = value || "";
          }
        });
      });
      var chosen = rules.field_values || {};
      form.querySelectorAll('input[name^="' + FIELD + '"]').forEach(function (el) {
        var values = chosen[el.name.slice(FIELD.length)] || [];
        el.checked = values.indexOf(el.value) >= 0;
      });
    }

    if (box.hasAttribute("data-count-now")) {
      refresh();  // the page came without the size: counting takes a while on a big list
    }
    form.addEventListener("input", soon);
    form.addEventListener("change", function (event) {
      if (event.target.name === "saved_audience") {
        var option = event.target.selectedOptions[0];
        apply(option && option.getAttribute("data-rules") ? JSON.parse(option.getAttribute("data-rules")) : {});
      }
      soon();
    });
  })();

  // The dashboard: its charts, fetched after the page (the link stays if that fails).
  (function () {
    var holder = document.querySelector(".deferred-charts[data-url]");
    if (!holder) {
      return;
    }
    fetch(holder.getAttribute("data-url"), { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status);
        }
        return response.text();
      })
      .then(function (html) {
        // server-drawn SVG and escaped figures from our own origin (charts.part)
        holder.innerHTML = html;
        holder.setAttribute("aria-busy", "false");
      })
      .catch(function () {
        holder.setAttribute("aria-busy", "false");
      });
  })();

  // A draft's page: how many it would go to, counted after the page (seconds on a big list).
  (function () {
    var count = document.querySelector(".recipient-count[data-url]");
    if (!count) {
      return;
    }
    var numbers = new Intl.NumberFormat();
    fetch(count.getAttribute("data-url"),
          { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        count.classList.remove("is-busy");
        if (data.error) {
          count.textContent = data.error;
          count.className = "field-error";
          return;
        }
        count.textContent = data.words;
        var send = document.querySelector('[data-field="send"]');
        var nobody = document.querySelector('[data-field="nobody"]');
        if (send && data.size > 0) {
          send.textContent = "Send to " + numbers.format(data.size) + " " +
                             (data.size === 1 ? "person" : "people") + "…";
        } else if (send && nobody) {
          send.closest(".send-step").hidden = true;
          nobody.hidden = false;
        }
      })
      .catch(function () {
        count.classList.remove("is-busy");
      });
  })();

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
    // A paused or stalled blast sends nothing: no rate and no time left, as the server renders it.
    set("rate", s.state === "paused" || s.rate_per_second === null ? "—" : s.rate_per_second + "/s");
    set("seconds_left", s.state === "paused" ? "paused"
      : s.stalled_since ? s.stalled_words : duration(s.seconds_left));
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

/* The actions pages' embed codes: "Copy" puts a code on the clipboard (or selects it to copy by
   hand), and a preview frame of an embedded form keeps the height the form reports. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy-from]") : null;
    if (!button) return;
    var id = button.getAttribute("data-copy-from");
    var field = document.getElementById(id);
    var said = document.querySelector("[data-copied-for='" + id + "']");
    var done = function (text) { if (said) said.textContent = text; };
    if (!field) return;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { done("Copied."); }, function () {
        field.select(); done("Selected: press Ctrl+C (⌘C) to copy.");
      });
    } else {
      field.select();
      done(document.execCommand("copy") ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
    }
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data || event.data.type !== "alerts-embed:height") return;
    Array.prototype.forEach.call(document.querySelectorAll("iframe[data-embed-preview]"), function (frame) {
      var height = Number(event.data.height);
      if (frame.contentWindow === event.source && height > 0 && height < 10000) {
        frame.style.height = Math.ceil(height) + "px";
      }
    });
  });
})();
