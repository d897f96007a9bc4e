// A failed run reads as an error, on every tab: the status line under a run button (the class
// "flux-run-status", flux_ui/ui/layout.py prompt_row) is an alert, with role="alert", while what it says
// holds ⚠️ (flux_ui/ui/common.py ALERT_MARK, how every failure is written, alone or within a run's summary
// of what failed), and a plain status line again as soon as it says anything else: the next run's
// progress, or nothing once an image is made. The page alone does this, so what the endpoints return to
// programs is unchanged.
(() => {
  const MARK = "\u26a0";  // ⚠, with or without the emoji selector after it
  // Gradio puts a Markdown's classes on its block and on the text inside: the block is the one marked.
  const STATUS = ".block.flux-run-status";
  const ALERT = "flux-alert";
  const mark = () => {
    for (const status of document.querySelectorAll(STATUS)) {
      const shown = status.querySelector(".prose") || status;
      const failed = shown.textContent.includes(MARK);
      if (status.classList.contains(ALERT) !== failed) status.classList.toggle(ALERT, failed);
      if (failed && status.getAttribute("role") !== "alert") status.setAttribute("role", "alert");
      if (!failed && status.hasAttribute("role")) status.removeAttribute("role");
    }
  };
  // Attribute changes are not observed, so marking never wakes the observer again.
  new MutationObserver(mark).observe(document.documentElement, { childList: true, subtree: true, characterData: true });
  document.addEventListener("DOMContentLoaded", mark);
})();
