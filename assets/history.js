// History: the link to one saved image (?entry=ID), made from the address this page was reached at
// (the server cannot know it behind a proxy), and copying it, also where the Clipboard API is missing
// (a plain-http address other than localhost). flux_ui/ui/history_actions.py calls these.
(() => {
  const link = (id) => {
    if (!id) return "";
    const url = new URL(window.location.href);
    url.hash = "";
    url.searchParams.set("entry", id);
    return url.toString();
  };
  const copied = "Link copied: whoever opens it signs in as usual and sees this image in History.";
  const copy = async (text) => {
    if (!text) return "Select an image first.";
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return copied;
      }
    } catch (err) {
      // refused (no permission): try the older way below
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch (err) {
      done = false;
    }
    area.remove();
    return done ? copied : "This browser did not let the page copy: copy the link from the box above.";
  };
  window.fluxHistory = { link, copy };
})();
