/* The staff action form: show the fields the chosen kind uses (without this script all are shown). */
(function () {
  "use strict";

  var kind = document.querySelector(".action-form select[name='kind']");
  if (!kind) {
    return;
  }
  var parts = document.querySelectorAll(".action-form [data-kinds]");

  function show() {
    Array.prototype.forEach.call(parts, function (part) {
      var kinds = part.getAttribute("data-kinds").split(" ");
      // A part with a problem stays in view, whatever the kind, so its message is seen.
      part.hidden = kinds.indexOf(kind.value) < 0 && !part.querySelector(".has-error");
    });
  }

  kind.addEventListener("change", show);
  show();
}());
