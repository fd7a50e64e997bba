// "Label next": Enter (or A) accepts the selected labels, a number key picks that label (a radio:
// and accepts at once; a checkbox of a multi_label task: toggles it), S skips to the next image.
"use strict";
(function () {
  const form = document.getElementById("accept-form");
  if (!form) return;
  const single = form.querySelector("input[type=radio][data-key]") !== null;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"))) return;
    if (event.key === "Enter" || event.key === "a" || event.key === "A") {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      document.getElementById("skip-link").click();
    } else if (/^[1-9]$/.test(event.key)) {
      const input = form.querySelector(`input[data-key="${event.key}"]`);
      if (!input) return;
      event.preventDefault();
      if (single) {
        input.checked = true;
        form.requestSubmit();
      } else {
        input.checked = !input.checked;
      }
    }
  });
})();
