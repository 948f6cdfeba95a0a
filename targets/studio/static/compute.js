// targets studio: the compute pages.
"use strict";

// Once a target is attached, its form forgets the secrets typed into it: the browser
// keeps a password no longer than the attach needed it (the server never echoes one).
document.addEventListener("htmx:afterSwap", (event) => {
  const box = event.detail.target;
  if (!box || !box.querySelector || !box.querySelector("[data-attached]")) return;
  const form = box.closest("form");
  if (!form) return;
  form.querySelectorAll('input[type="password"]').forEach((input) => {
    input.value = "";
  });
  if (window.studioToast) window.studioToast("attached " + box.querySelector("[data-attached]").dataset.attached);
});
