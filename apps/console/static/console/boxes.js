// The box editor: draw, move, resize, relabel and delete boxes with the mouse and the keyboard.
// Boxes live in the stored image's pixels ([x1, y1, x2, y2]); every change is saved at once through
// the console's box endpoints (the detection services validate it), and the status line says so.
// With a deployed model its boxes are drawn dashed as proposals: stored only when a person accepts
// one (Enter on the selected one, A for all), relabels it (a number key) or adjusts it (drag).
"use strict";
(function () {
  const editor = document.getElementById("box-editor");
  if (!editor) return;
  const image = editor.querySelector("img");
  const status = document.getElementById("box-status");
  const natural = { w: Number(editor.dataset.width), h: Number(editor.dataset.height) };
  const boxes = JSON.parse(document.getElementById("box-data").textContent);
  const colours = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#008080"];
  const labelInputs = Array.from(document.querySelectorAll("input[name=box-label]"));
  let selected = null;
  let saved = boxes.length;

  const scale = () => editor.clientWidth / natural.w;
  const chosenLabel = () => (labelInputs.find((i) => i.checked) || {}).value;
  const colourOf = (label) => colours[Math.max(0, labelInputs.findIndex((i) => i.value === label)) % colours.length];
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  function say(text) { status.textContent = text; }

  function place(box) {
    const s = scale();
    const [x1, y1, x2, y2] = box.box;
    Object.assign(box.el.style, {
      left: x1 * s + "px", top: y1 * s + "px", width: (x2 - x1) * s + "px", height: (y2 - y1) * s + "px",
      borderColor: colourOf(box.label),
    });
    const input = labelInputs.find((i) => i.value === box.label);
    const name = input ? input.dataset.name : "?";
    box.el.querySelector("span").textContent = box.proposed ? name + " " + Math.round(box.prob * 100) + "%?" : name;
    box.el.classList.toggle("proposed", Boolean(box.proposed));
    box.el.setAttribute("aria-label", box.proposed ? "Proposed box" : "Box");
  }

  function select(box) {
    if (selected) selected.el.classList.remove("selected");
    selected = box;
    if (box) box.el.classList.add("selected");
  }

  function form(box) {
    const data = new FormData();
    data.append("label", box.label);
    ["x1", "y1", "x2", "y2"].forEach((k, i) => data.append(k, String(Math.round(box.box[i] * 10) / 10)));
    return data;
  }

  // Saves in flight: the status says "Saving…" until the last one has answered.
  let pending = 0;
  let failure = null;
  // Saves and deletes go to the server one after another, in the order they were made: a later
  // state of a box is never overtaken by an earlier one on the way, and a new box's next save
  // (or delete) waits for the id its first save brings back, instead of creating it twice.
  let queue = Promise.resolve();

  function inTurn(step) {
    const done = queue.then(step);
    queue = done.catch(() => {});
    return done;
  }

  function save(box) {
    pending += 1;
    say("Saving…");
    const data = form(box); // the box as it is now, sent when its turn comes
    return inTurn(() => send(box, data));
  }

  async function send(box, data) {
    const url = box.id ? editor.dataset.baseUrl + box.id + "/" : editor.dataset.createUrl;
    const answer = await window.vfConsole.post(url, data);
    pending -= 1;
    if (answer.status === 200) {
      const isNew = !box.id;
      box.id = answer.body.id;
      box.box = answer.body.box;
      box.el.dataset.id = box.id;
      if (isNew) saved += 1;
      box.proposed = false;
      place(box);
      proposalsChanged();
    } else {
      failure = "Not saved: " + ((answer.body && answer.body.error) || "HTTP " + answer.status);
    }
    if (pending === 0) {
      say(failure || "Saved. " + saved + " box" + (saved === 1 ? "" : "es") + " saved.");
      failure = null;
    }
  }

  function remove(box) {
    return inTurn(() => removeNow(box));
  }

  async function removeNow(box) {
    const dismissed = box.proposed && !box.id;
    if (box.id) {
      const answer = await window.vfConsole.post(editor.dataset.baseUrl + box.id + "/delete/", new FormData());
      if (answer.status !== 200) { say("Not deleted: HTTP " + answer.status); return; }
      saved -= 1;
    }
    box.el.remove();
    boxes.splice(boxes.indexOf(box), 1);
    select(null);
    proposalsChanged();
    say((dismissed ? "Dismissed. " : "Deleted. ") + saved + " box" + (saved === 1 ? "" : "es") + " saved.");
  }

  function render(box) {
    box.el = document.createElement("div");
    box.el.className = "box editable";
    box.el.innerHTML = "<span></span><i class='handle' title='Resize'></i>";
    box.el.setAttribute("role", "button");
    editor.appendChild(box.el);
    place(box);
    box.el.addEventListener("mousedown", (e) => {
      e.stopPropagation();
      e.preventDefault();
      select(box);
      drag(e, box, e.target.classList.contains("handle") ? "resize" : "move");
    });
  }

  function point(e) {
    const rect = editor.getBoundingClientRect();
    const s = scale();
    return [clamp((e.clientX - rect.left) / s, 0, natural.w), clamp((e.clientY - rect.top) / s, 0, natural.h)];
  }

  function drag(start, box, mode) {
    const [sx, sy] = point(start);
    const origin = box.box.slice();
    function moved(e) {
      const [x, y] = point(e);
      if (mode === "draw") box.box = [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
      else if (mode === "resize") box.box = [origin[0], origin[1], Math.max(origin[0] + 1, x), Math.max(origin[1] + 1, y)];
      else {
        const w = origin[2] - origin[0], h = origin[3] - origin[1];
        const x1 = clamp(origin[0] + x - sx, 0, natural.w - w), y1 = clamp(origin[1] + y - sy, 0, natural.h - h);
        box.box = [x1, y1, x1 + w, y1 + h];
      }
      place(box);
    }
    function done(e) {
      document.removeEventListener("mousemove", moved);
      document.removeEventListener("mouseup", done);
      moved(e);
      const big = box.box[2] - box.box[0] >= 2 && box.box[3] - box.box[1] >= 2;
      if (mode === "draw" && !big) { box.el.remove(); boxes.splice(boxes.indexOf(box), 1); return; }
      // A click (no real movement) saves nothing: compare with a tolerance, not the float sums.
      const changed = box.box.some((v, i) => Math.abs(v - origin[i]) > 0.05);
      if (changed || mode === "draw") save(box);
      else { box.box = origin; place(box); }
    }
    document.addEventListener("mousemove", moved);
    document.addEventListener("mouseup", done);
  }

  editor.addEventListener("mousedown", (e) => {
    if (e.button !== 0 || !chosenLabel()) return;
    e.preventDefault();
    const [x, y] = point(e);
    const box = { id: null, label: chosenLabel(), box: [x, y, x, y] };
    boxes.push(box);
    render(box);
    select(box);
    drag(e, box, "draw");
  });

  // ------------------------------------------------------------------ the model's proposals
  const guessUrl = editor.dataset.guessUrl;
  const showButton = document.getElementById("show-guess");
  const acceptButton = document.getElementById("accept-guess");
  const proposals = () => boxes.filter((b) => b.proposed && !b.id);

  function proposalsChanged() {
    if (acceptButton) acceptButton.hidden = proposals().length === 0;
  }

  async function showGuess() {
    if (!guessUrl) return;
    say("Asking the model…");
    let answer;
    try {
      const response = await fetch(guessUrl, { headers: { Accept: "application/json" } });
      answer = { status: response.status, body: await response.json() };
    } catch (err) {
      answer = { status: 0, body: { error: "The server could not be reached." } };
    }
    if (answer.status !== 200) {
      say("No proposals: " + ((answer.body && answer.body.error) || "HTTP " + answer.status));
      return;
    }
    proposals().forEach((box) => { box.el.remove(); boxes.splice(boxes.indexOf(box), 1); });
    const known = new Set(labelInputs.map((i) => i.value));
    // Least probable first, so where proposals overlap the most probable is on top, under the mouse.
    answer.body.boxes.filter((g) => known.has(g.label)).reverse().forEach((g) => {
      const box = { id: null, label: g.label, box: g.box.slice(), prob: g.prob, proposed: true };
      boxes.push(box);
      render(box);
    });
    const count = proposals().length;
    proposalsChanged();
    say(count
      ? "The model proposes " + count + " box" + (count === 1 ? "" : "es") + " (dashed): Enter accepts the selected one, A all of them."
      : "The model finds nothing on this image.");
  }

  function accept(box) {
    if (!box || !box.proposed || box.id) return;
    save(box);
    proposalsChanged();
  }

  if (showButton) showButton.addEventListener("click", showGuess);
  if (acceptButton) acceptButton.addEventListener("click", () => proposals().forEach(accept));

  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input[type=text], input[type=number], textarea, select")) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Enter" && selected && selected.proposed) {
      e.preventDefault();
      accept(selected);
      return;
    }
    if ((e.key === "a" || e.key === "A") && guessUrl) {
      proposals().forEach(accept);
      return;
    }
    if ((e.key === "p" || e.key === "P") && guessUrl) {
      showGuess();
      return;
    }
    if (/^[1-9]$/.test(e.key) && labelInputs[Number(e.key) - 1]) {
      labelInputs[Number(e.key) - 1].checked = true;
      if (selected) { selected.label = chosenLabel(); place(selected); save(selected); }
    } else if ((e.key === "Delete" || e.key === "Backspace") && selected) {
      e.preventDefault();
      remove(selected);
    } else if (e.key === "n" || e.key === "N" || e.key === "ArrowRight") {
      const next = document.getElementById("next-image");
      if (next) window.location.href = next.href;
    } else if (e.key === "Escape") {
      select(null);
    }
  });
  labelInputs.forEach((input) => input.addEventListener("change", () => {
    if (selected) { selected.label = input.value; place(selected); save(selected); }
  }));

  function start() {
    boxes.forEach(render);
    // An image with no box yet starts from the model's boxes, when there is a model to ask.
    if (guessUrl && boxes.length === 0) showGuess();
  }
  if (image.complete) start(); else image.addEventListener("load", start);
  window.addEventListener("resize", () => boxes.forEach(place));
})();
