// crm-hub console: the live call pop-up for the logged-in operator's extension. No library, no inline script.
(function () {
  "use strict";
  var ext = document.body.getAttribute("data-extension");
  var pop = document.getElementById("call-pop");
  if (!ext || !pop || !window.EventSource) { return; }
  var body = pop.querySelector(".pop-body");
  var number = pop.querySelector(".pop-number");
  var current = null;
  pop.querySelector(".pop-close").addEventListener("click", function () { pop.hidden = true; current = null; });

  function show(call) {
    current = call.key;
    number.textContent = call.number || "";
    pop.hidden = false;
    if (call.client && call.client.id) {
      fetch("/console/clients/" + encodeURIComponent(call.client.id) + "/pop", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) { if (current === call.key) { body.innerHTML = html; } });  // server-rendered, escaped
    } else {
      body.textContent = body.getAttribute("data-unknown");
    }
  }

  var source = new EventSource("/console/calls/stream");
  source.addEventListener("ringing", function (e) { show(JSON.parse(e.data)); });
  source.addEventListener("active", function (e) {
    var call = JSON.parse(e.data);
    if (current !== call.key) { show(call); }
  });
  source.addEventListener("ended", function (e) {
    var call = JSON.parse(e.data);
    if (current === call.key) { pop.classList.add("ended"); }
  });
})();
