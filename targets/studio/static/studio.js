// targets studio: what every page shares. Page scripts live next to this file
// (compute.js, runs.js, run.js, ...); no inline scripts (the CSP forbids them).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (window.htmx) {
    // Errors from the library (a 400 with the CLI's message and hint) are shown where the
    // answer would have gone, not dropped.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: true, error: true },
    ];
    htmx.config.includeIndicatorStyles = false;
    htmx.config.allowEval = false;
  }
});

// A short notice at the bottom of the page.
window.studioToast = function (text) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = text;
  box.classList.add("shown");
  clearTimeout(box._timer);
  box._timer = setTimeout(() => box.classList.remove("shown"), 4000);
};

// The CSRF token, for requests made by page scripts with fetch().
window.studioCsrf = function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
};
