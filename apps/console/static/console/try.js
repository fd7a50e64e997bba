// "Try it": a dropped (or chosen) image goes to the console's try endpoint with the chosen version;
// the answer (labels with probabilities, or boxes over the image) replaces #try-result.
"use strict";
(function () {
  const form = document.querySelector("form.try");
  if (!form) return;
  const zone = form.querySelector(".try-drop");
  const input = form.querySelector(".try-input");
  const result = document.getElementById("try-result");

  async function send(file) {
    const data = new FormData();
    data.append("image", file);
    data.append("version", form.querySelector("[name=version]").value);
    result.textContent = "Running " + file.name + "…";
    const answer = await window.vfConsole.post(form.action, data);
    result.innerHTML = typeof answer.body === "string" ? answer.body : "HTTP " + answer.status;
  }

  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) send(e.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => { if (input.files.length) send(input.files[0]); input.value = ""; });
})();
