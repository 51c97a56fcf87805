// The copy button beside a key shown once (templates/billing/developer_apps/apps.html). It is
// hidden in the page and shown here, so a browser without scripts shows the key alone, ready
// to select. Clipboard access needs a secure context (https or localhost); elsewhere the key
// is selected and the reader is told to copy it.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.querySelector('[data-copy-status="' + field.id + '"]');
    var say = function (text) {
      if (status) status.textContent = text;
    };
    button.hidden = false;
    field.addEventListener("focus", function () {
      field.select();
    });
    button.addEventListener("click", function () {
      field.select();
      if (!navigator.clipboard || !window.isSecureContext) {
        say("Press Ctrl+C (or ⌘C) to copy the selected key.");
        return;
      }
      navigator.clipboard.writeText(field.value).then(
        function () {
          button.textContent = button.getAttribute("data-copied-text") || "Copied";
          say("The key is copied to your clipboard.");
        },
        function () {
          say("Press Ctrl+C (or ⌘C) to copy the selected key.");
        }
      );
    });
  });
});
