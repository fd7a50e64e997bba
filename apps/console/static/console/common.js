// Shared by the console's scripts: the CSRF token and a POST of form data with upload progress.
"use strict";
window.vfConsole = {
  csrfToken() {
    const field = document.querySelector("[name=csrfmiddlewaretoken]");
    if (field) return field.value;
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    return cookie ? decodeURIComponent(cookie.split("=")[1]) : "";
  },
  // POST `data` (FormData) to `url`; onProgress(0..100) while the body goes out; resolves with
  // {status, body} (body parsed as JSON when the answer is JSON, else text).
  post(url, data, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", window.vfConsole.csrfToken());
      if (onProgress) {
        xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.round((100 * e.loaded) / e.total)); };
      }
      xhr.onload = () => {
        let body = xhr.responseText;
        if ((xhr.getResponseHeader("Content-Type") || "").includes("json")) {
          try { body = JSON.parse(body); } catch (err) { /* keep the text */ }
        }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => resolve({ status: 0, body: { error: "The server could not be reached." } });
      xhr.send(data);
    });
  },
};
