// Icon-only buttons get a tooltip (title) and an accessible name (aria-label). Gradio's buttons take
// neither, so flux_ui/ui/icons.py marks them with the classes "flux-icon" and "flux-label:<words_joined>".
(() => {
  const PREFIX = "flux-label:";
  const label = (root) => {
    for (const marked of root.querySelectorAll(".flux-icon")) {
      const name = [...marked.classList].find((c) => c.startsWith(PREFIX));
      if (!name) continue;
      const text = name.slice(PREFIX.length).replaceAll("_", " ");
      const button = marked.matches("button") ? marked : marked.querySelector("button") || marked;
      if (button.getAttribute("aria-label") !== text) button.setAttribute("aria-label", text);
      if (button.getAttribute("title") !== text) button.setAttribute("title", text);
    }
  };
  let queued = false;
  const soon = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; label(document); });
  };
  new MutationObserver(soon).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", soon);
})();
