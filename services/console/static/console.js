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

  // "refused" stays until the page is reloaded; "unreachable" goes once a request succeeds.
  function problem(show, refused) {
    var box = document.getElementById("problem");
    if (!box) { return; }
    if (!show && box.dataset.kind === "refused") { return; }
    box.dataset.kind = show ? (refused ? "refused" : "unreachable") : "";
    box.textContent = show ? (refused ? box.dataset.refused : box.dataset.text) : "";
    box.hidden = !show;
  }

  var lastOpen = null;
  var connected = false;

  document.addEventListener("htmx:sseOpen", function () {
    liveStatus(true);
    problem(false, false);
    connected = true;
  });
  document.addEventListener("htmx:sseError", function () { liveStatus(false); });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    problem(true, status >= 400 && status < 500);
  });
  document.addEventListener("htmx:sendError", function () { problem(true, false); });

  // After the list was re-fetched: tell screen readers when more alerts wait than before.
  document.addEventListener("htmx:afterSettle", function () {
    var panel = document.getElementById("inbox-panel");
    problem(false, false);
    if (!panel) { return; }
    // the list fetched again once connected: from now on it is live (tests wait for this)
    if (connected) { document.body.dataset.live = "ready"; }
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
