/* After a refused answer, focus the first field at fault: the page opens at the form (#advocate), and
   browsers skip `autofocus` when the address has a fragment. Done after the browser's own
   scroll to the fragment, which would otherwise take the focus back. */
(function () {
  "use strict";
  function focusField() {
    var field = document.querySelector('.signup [aria-invalid="true"]');
    if (field) {
      field.focus({ preventScroll: true });
    }
  }
  if (document.readyState === "complete") {
    window.setTimeout(focusField, 0);
  } else {
    window.addEventListener("load", function () { window.setTimeout(focusField, 0); });
  }
})();
