// Edit with references: drag a reference card onto another to move it there (keyboards keep the arrows).
// The order lives on the server, so a drop only says what moved: it writes "<from> <to> <nonce>" (image
// numbers) into the hidden textbox #edit-drag, whose change event moves the list as the arrows do
// (flux_ui/ui/edit_cards.py). It also names what Gradio leaves unnamed on the tab: each card's picture
// (a button) and fullscreen toggle by their image, and icon buttons with an aria-label but no tooltip; and
// it takes an image pasted with the keyboard into the paste box.
(() => {
  const CARD = "#edit-cards .edit-card";
  const number = (card) => Number(card.id.replace("edit-card-", ""));
  let dragged = null;
  let sent = 0;

  const name = (element, text) => {
    if (element.getAttribute("aria-label") !== text) element.setAttribute("aria-label", text);
    if (element.getAttribute("title") !== text) element.setAttribute("title", text);
  };

  const prepare = () => {
    for (const card of document.querySelectorAll(CARD)) {
      if (card.getAttribute("draggable") !== "true") card.setAttribute("draggable", "true");
      const image = `image ${number(card)}`;
      const picture = card.querySelector("button:has(img)");
      if (picture) name(picture, `${image}: drag the card onto another to move it there`);
      // Gradio's own fullscreen toggle (a new button each way) says which image it shows.
      for (const full of card.querySelectorAll("button[aria-label='Fullscreen']")) name(full, `Show ${image} full screen`);
      for (const full of card.querySelectorAll("button[aria-label='Exit fullscreen mode']")) {
        name(full, `Leave full screen (${image})`);
      }
    }
    const tab = document.querySelector("#edit-refs")?.closest("[role=tabpanel]");
    for (const button of tab ? tab.querySelectorAll("button[aria-label]:not([title])") : []) {
      button.setAttribute("title", button.getAttribute("aria-label"));
    }
  };

  const clearMarks = () => {
    for (const card of document.querySelectorAll(`${CARD}.edit-drop-target`)) card.classList.remove("edit-drop-target");
  };

  const end = () => {
    dragged?.classList.remove("edit-dragging");
    dragged = null;
    clearMarks();
  };

  const send = (from, to) => {
    const box = document.querySelector("#edit-drag textarea, #edit-drag input");
    if (!box || from === to) return;
    sent += 1;
    box.value = `${from} ${to} ${Date.now()}-${sent}`;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  };

  document.addEventListener("dragstart", (event) => {
    const card = event.target.closest?.(CARD);
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", `image ${number(card)}`);
    card.classList.add("edit-dragging");
  });

  // Capture: while a card is dragged, only another card takes it (never the paste box's upload area).
  document.addEventListener("dragover", (event) => {
    if (!dragged) return;
    const card = event.target.closest?.(CARD);
    event.stopPropagation();
    if (!card) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!card.classList.contains("edit-drop-target")) {
      clearMarks();
      if (card !== dragged) card.classList.add("edit-drop-target");
    }
  }, true);

  document.addEventListener("drop", (event) => {
    if (!dragged) return;
    event.preventDefault();
    event.stopPropagation();
    const card = event.target.closest?.(CARD);
    if (card) send(number(dragged), number(card));
    end();
  }, true);

  document.addEventListener("dragend", end);

  // Ctrl+V (⌘+V) with an image on the clipboard, anywhere on the tab but a text field, goes into the paste
  // box as if dropped there: the box opens as an upload area, where Gradio reads the clipboard only from
  // its own button.
  document.addEventListener("paste", (event) => {
    const area = document.querySelector("#edit-paste button.upload-container");
    if (!area || area.offsetParent === null) return;  // another tab is shown
    if (event.target.closest?.("input, textarea, [contenteditable='true']")) return;
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (!file) return;
    event.preventDefault();
    const data = new DataTransfer();
    data.items.add(file);
    area.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
  });

  let queued = false;
  const soon = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; prepare(); });
  };
  new MutationObserver(soon).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", soon);
})();
