// The image grid: "select all on page", shift-click to select a run of thumbnails, and a
// confirmation before the selected images are deleted.
"use strict";
(function () {
  let last = null;
  document.addEventListener("click", (e) => {
    if (e.target.matches(".select-all")) {
      const boxes = e.target.closest("form").querySelectorAll("input[name=images]");
      const all = Array.from(boxes).every((b) => b.checked);
      boxes.forEach((b) => { b.checked = !all; });
      return;
    }
    if (e.target.matches("input[name=images]")) {
      const boxes = Array.from(document.querySelectorAll("input[name=images]"));
      if (e.shiftKey && last !== null) {
        const [a, b] = [boxes.indexOf(last), boxes.indexOf(e.target)].sort((x, y) => x - y);
        boxes.slice(a, b + 1).forEach((box) => { box.checked = e.target.checked; });
      }
      last = e.target;
    }
  });
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!form.matches("form.bulk") || form.querySelector("[name=action]").value !== "delete") return;
    const count = form.querySelectorAll("input[name=images]:checked").length;
    if (!window.confirm("Delete " + count + " image(s) and their files? This cannot be undone.")) e.preventDefault();
  });
})();
