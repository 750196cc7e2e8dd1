// Invalid input re-renders in place: the server answers 400/409/422 with the form and its
// errors, so htmx must swap those responses too (its default only swaps 2xx).
htmx.config.responseHandling = [
  { code: "204", swap: false },
  { code: "[23]..", swap: true },
  { code: "4..", swap: true, error: false },
  { code: "...", swap: false, error: true },
];

// "Select all" / "Select none": delegated from the document, so buttons swapped in by htmx work
// too, and no inline onclick is needed (the Content-Security-Policy forbids inline script).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-check-all], [data-check-none]");
  if (!button) return;
  const checked = button.hasAttribute("data-check-all");
  const selector = button.getAttribute(checked ? "data-check-all" : "data-check-none");
  document.querySelectorAll(selector).forEach((box) => {
    box.checked = checked;
  });
});

// A <select data-autosubmit> submits its form on change (the workspace switcher); the form keeps
// its submit button for keyboard users and for browsers without JavaScript.
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.requestSubmit();
});

// A <button data-copy="#selector"> copies that field's value (the API token shown once after creation).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.getAttribute("data-copy"));
  if (!field) return;
  field.select();
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, () => document.execCommand("copy") && done());
  } else if (document.execCommand("copy")) {
    done();
  }
});
