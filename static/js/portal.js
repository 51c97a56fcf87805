// Keyboard focus survives htmx updates. htmx puts focus back on an element with the same id
// (the pager links have ids); when that element is gone (the last page has no "Older"), focus
// would fall to the top of the page, so the updated region takes it instead.
document.addEventListener("htmx:afterSettle", function (event) {
  var region = event.detail.target;
  var active = document.activeElement;
  // Browsers may report the removed link as focused until their next rendering step.
  var lost = !active || active === document.body || !active.isConnected;
  if (lost && region.isConnected && region.hasAttribute("tabindex")) {
    region.focus({ preventScroll: true });
  }
});

// htmx keeps a snapshot of the page's HTML for Back and Forward. A select's choice and a
// field's text live in the DOM's properties, not its attributes, so the snapshot showed a
// filtered list under "All kinds": write them into the attributes before it is taken.
document.addEventListener("htmx:beforeHistorySave", function () {
  document.querySelectorAll("select option").forEach(function (option) {
    option.toggleAttribute("selected", option.selected);
  });
  document.querySelectorAll("input[type=search], input[type=text]").forEach(function (input) {
    input.setAttribute("value", input.value);
  });
});
