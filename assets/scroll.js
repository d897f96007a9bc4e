// On a narrow screen the result sits below a long form: after a run button is pressed, bring that tab's
// result into view as soon as it shows something new (an image), once. Convention: the run button's id
// is "<tab>-run" (ui/layout.py prompt_row) and the result's "<tab>-result" (each tab's result panel).
(() => {
  const NARROW = "(max-width: 820px)";
  const WAIT_MS = 10 * 60 * 1000; // longer than any run may take
  let armed = null;
  const disarm = () => {
    if (!armed) return;
    armed.observer.disconnect();
    clearTimeout(armed.timer);
    armed = null;
  };
  const sources = (result) => new Set([...result.querySelectorAll("img")].map((img) => img.src));
  // At once, not smoothly: a smooth scroll stops short when the streamed frames change the page under it.
  const bring = (result) => result.scrollIntoView({ behavior: "instant", block: "start" });
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("button[id$='-run']");
    if (!button || !matchMedia(NARROW).matches) return;
    const result = document.getElementById(button.id.replace(/-run$/, "-result"));
    // Only where the columns have stacked, the result below the form: beside it, it is in view already.
    if (!result || result.getBoundingClientRect().top < button.getBoundingClientRect().bottom) return;
    disarm();
    const before = sources(result);
    // On its appearance, not its load: an image below the fold loads lazily, only once scrolled to.
    const observer = new MutationObserver(() => {
      if ([...sources(result)].some((src) => src && !before.has(src))) {
        disarm();
        bring(result);
      }
    });
    observer.observe(result, { subtree: true, childList: true, attributes: true, attributeFilter: ["src"] });
    armed = { observer, timer: setTimeout(disarm, WAIT_MS) };
  }, true);
  // Someone who scrolls meanwhile went somewhere on purpose: the page stays where they put it.
  for (const kind of ["wheel", "touchmove"]) addEventListener(kind, disarm, { passive: true });
})();
