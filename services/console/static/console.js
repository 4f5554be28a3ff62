// Liaison Exchange console: the little the pages need beyond htmx. No inline script exists
// (the Content-Security-Policy forbids it); everything works without this file, only live
// updates and in-place acknowledgement need it.
(function () {
  "use strict";

  function liveStatus(on) {
    var status = document.getElementById("live-status");
    if (!status) { return; }
    status.textContent = on ? status.dataset.live : status.dataset.reconnecting;
    status.classList.toggle("on", on);
    status.classList.toggle("off", !on);
  }

  function problem(show, refused) {
    var box = document.getElementById("problem");
    if (!box) { return; }
    box.textContent = show ? (refused ? box.dataset.refused : box.dataset.text) : "";
    box.hidden = !show;
  }

  var lastOpen = null;

  document.addEventListener("htmx:sseOpen", function () { liveStatus(true); problem(false); });
  document.addEventListener("htmx:sseError", function () { liveStatus(false); });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    problem(true, status >= 400 && status < 500);
  });
  document.addEventListener("htmx:sendError", function () { problem(true); });

  // After the list was re-fetched: tell screen readers when more alerts wait than before.
  document.addEventListener("htmx:afterSettle", function () {
    var panel = document.getElementById("inbox-panel");
    problem(false);
    if (!panel) { return; }
    var open = parseInt(panel.dataset.open || "0", 10);
    if (lastOpen !== null && open > lastOpen) {
      var announce = document.getElementById("announce");
      if (announce) { announce.textContent = panel.dataset.new + " (" + open + ")"; }
    }
    lastOpen = open;
  });

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("inbox-panel");
    if (panel) { lastOpen = parseInt(panel.dataset.open || "0", 10); }
  });
})();
