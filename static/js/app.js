// Invalid input re-renders in place: the server answers 400/409/422 with the form and its
// errors, so htmx must swap those responses too (its default only swaps 2xx).
htmx.config.responseHandling = [
  { code: "204", swap: false },
  { code: "[23]..", swap: true },
  { code: "4..", swap: true, error: false },
  { code: "...", swap: false, error: true },
];
