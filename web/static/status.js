// Live progress on the student's status page: polls the job's JSON while it is queued
// or printing. Loaded as a file (the page's CSP allows no inline script).
(function () {
  "use strict";
  var section = document.getElementById("job-status");
  if (!section || section.dataset.live !== "yes") { return; }
  var url = "/api/v1/status/" + encodeURIComponent(section.dataset.job) +
            "?t=" + encodeURIComponent(section.dataset.token);
  function show(id, visible) { document.getElementById(id).hidden = !visible; }
  function text(id, value) { document.getElementById(id).textContent = value; }
  function update(job) {
    text("status-name", job.status);
    text("status-text", job.status_text);
    show("queue", !!job.queue_position);
    text("queue-position", job.queue_position || "");
    var p = job.progress;
    show("progress", !!p);
    if (p) {
      document.getElementById("progress-bar").value = p.percent;
      text("progress-text", p.percent.toFixed(1) + " %");
      text("progress-eta", p.eta_s ? "about " + Math.round(p.eta_s / 60) + " min left" : "");
    }
    return job.status === "READYTOPRINT" || job.status === "PRINTING";
  }
  function poll() {
    fetch(url, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) { if (job && update(job)) { setTimeout(poll, 5000); } })
      .catch(function () { setTimeout(poll, 15000); });
  }
  setTimeout(poll, 5000);
})();
