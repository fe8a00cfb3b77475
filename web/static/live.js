// Live dashboard: printer tiles and status counts update without a reload.
//
// The transport is the one function `subscribe`: today it polls `/ui/live` every two
// seconds; moving to the server's event stream means replacing only `subscribe`
// (an EventSource whose messages carry the same update object).
(function () {
  'use strict';
  var tiles = document.getElementById('tiles');
  if (!tiles || !tiles.dataset.live) return;
  var INTERVAL_MS = 2000;

  function subscribe(url, onUpdate) {
    function tick() {
      fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
        .then(function (response) {
          if (response.redirected) { window.location.href = '/login'; return null; }
          return response.ok ? response.json() : null;
        })
        .then(function (update) { if (update) onUpdate(update); })
        .catch(function () { /* offline for a moment: try again next tick */ })
        .then(function () { window.setTimeout(tick, INTERVAL_MS); });
    }
    window.setTimeout(tick, INTERVAL_MS);
  }

  function fromHtml(html) {
    var template = document.createElement('template');
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function setText(root, field, text) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  }

  function applyTile(t) {
    var el = document.getElementById('tile-' + t.id);
    if (!el) { tiles.appendChild(fromHtml(t.html)); return; }
    if (el.dataset.key !== t.key) { el.replaceWith(fromHtml(t.html)); return; }
    var bar = el.querySelector('progress[data-field="percent"]');
    if (bar && t.percent !== null) bar.value = t.percent;
    ['percent_text', 'layer_text', 'eta_text', 'temps_text'].forEach(function (f) { setText(el, f, t[f]); });
  }

  function applyCount(c) {
    var link = document.querySelector('.count[data-status="' + c.status + '"]');
    if (!link) return;
    setText(link, 'count', String(c.count));
    var badge = link.querySelector('[data-field="new"]');
    if (badge) {
      badge.textContent = c.new + ' NEW';
      badge.classList.toggle('hidden', c.new === 0);
    }
  }

  subscribe(tiles.dataset.live, function (update) {
    update.tiles.forEach(applyTile);
    update.counts.forEach(applyCount);
    tiles.dataset.updates = String(Number(tiles.dataset.updates || 0) + 1);
  });
})();
