// On a narrow screen the result sits below a long form: after a run button is pressed, bring that tab's
// result into view as soon as it shows something new (an image), and hold it there for a moment while the
// run's last frames still move the page. Convention: the run button's id
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
  const SETTLE_MS = 3000;
  const inView = (result) => {
    const top = result.getBoundingClientRect().top;
    return top >= -2 && top < innerHeight / 3;
  };
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("button[id$='-run']");
    if (!button || !matchMedia(NARROW).matches) return;
    const result = document.getElementById(button.id.replace(/-run$/, "-result"));
    // Only where the columns have stacked, the result below the form: beside it, it is in view already.
    if (!result || result.getBoundingClientRect().top < button.getBoundingClientRect().bottom) return;
    disarm();
    const before = sources(result);
    let brought = 0;
    // On its appearance, not its load: an image below the fold loads lazily, only once scrolled to. For a
    // moment after, frames that still change the page above it (a status line shrinking as a run ends)
    // would carry it off screen: it is brought back while that moment lasts.
    const observer = new MutationObserver(() => {
      if (!brought) {
        if (![...sources(result)].some((src) => src && !before.has(src))) return;
        brought = performance.now();
        bring(result);
      } else if (performance.now() - brought > SETTLE_MS) {
        disarm();
      } else if (!inView(result)) {
        bring(result);
      }
    });
    // The whole page: what moves the result may be above it.
    observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true,
                                      attributeFilter: ["src", "style", "class"] });
    armed = { observer, timer: setTimeout(disarm, WAIT_MS) };
  }, true);
  // Someone who scrolls meanwhile went somewhere on purpose: the page stays where they put it.
  for (const kind of ["wheel", "touchmove"]) addEventListener(kind, disarm, { passive: true });
})();
