// Drag and drop of many image files onto a label: one request per file (VF_CONSOLE_PARALLEL_UPLOADS
// at a time), each file listed with its progress, then "stored" or the server's reason (duplicate,
// not an image, too large); when they are done, the label cards' counts are asked again.
"use strict";
(function () {
  const PARALLEL = Number(document.body.dataset.parallelUploads) || 3;

  function uploadAll(zone, files) {
    const list = zone.querySelector(".upload-list");
    const valueInput = zone.querySelector(".value-input");
    const queue = Array.from(files).map((file) => {
      const item = document.createElement("li");
      item.textContent = file.name + ": waiting";
      list.appendChild(item);
      return { file, item };
    });
    let stored = 0;
    async function next() {
      const job = queue.shift();
      if (!job) return;
      const data = new FormData();
      data.append("file", job.file);
      if (zone.dataset.label) data.append("label", zone.dataset.label);
      if (valueInput && valueInput.value !== "") data.append("value", valueInput.value);
      const answer = await window.vfConsole.post(zone.dataset.uploadUrl, data, (percent) => {
        job.item.textContent = job.file.name + ": " + percent + "%";
      });
      if (answer.status === 201) {
        stored += 1;
        job.item.textContent = job.file.name + ": stored";
        job.item.className = "ok";
      } else {
        const reason = (answer.body && answer.body.error) || "HTTP " + answer.status;
        job.item.textContent = job.file.name + ": " + reason;
        job.item.className = "error";
      }
      await next();
    }
    return Promise.all(Array.from({ length: PARALLEL }, next)).then(() => { if (stored) refreshCounts(); });
  }

  // Once a drop's files are stored, the label cards show the server's counts (as a reload would).
  async function refreshCounts() {
    const cards = document.querySelector(".labels[data-counts-url]");
    if (!cards) return;
    const answer = await fetch(cards.dataset.countsUrl, { headers: { Accept: "application/json" } });
    if (!answer.ok) return;
    const counts = (await answer.json()).labels || {};
    cards.querySelectorAll(".count[data-label-id]").forEach((count) => {
      if (count.dataset.labelId in counts) count.textContent = counts[count.dataset.labelId];
    });
  }

  document.querySelectorAll(".dropzone[data-upload-url]").forEach((zone) => {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) uploadAll(zone, e.dataTransfer.files);
    });
    const input = zone.querySelector(".file-input");
    input.addEventListener("change", () => { uploadAll(zone, input.files); input.value = ""; });
  });
})();
