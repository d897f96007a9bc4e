// Ctrl/Cmd+Enter in a prompt box presses its tab's run button.
// Convention: a tab's prompt has the element id "<tab>-prompt" and its run button "<tab>-run".
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const box = event.target.closest("[id$='-prompt']");
  if (!box) return;
  const button = document.getElementById(box.id.replace(/-prompt$/, "-run"));
  if (button) {
    event.preventDefault();
    button.click();
  }
});
