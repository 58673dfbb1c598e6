// The thank-you page's "Copy link" button: copies the share link, says so, falls back to selecting it.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById("share-url");
  const done = () => { button.textContent = button.dataset.copied || "Link copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(button.dataset.copy).then(done, () => field && field.select());
  } else if (field) {
    field.select();
    document.execCommand("copy");
    done();
  }
});
