// Live dashboard: printer tiles and status counts update without a reload.
//
// The transport is the one function `subscribe`: the server pushes each update over
// Server-Sent Events (`/ui/stream`, `event: update`) when the farm changes. If the
// stream cannot be opened or keeps failing (an old browser, a proxy that buffers
// events, an expired session) it falls back to polling `/ui/live` every two seconds,
// which also notices a lapsed session and goes to the login page.
(function () {
  'use strict';
  var tiles = document.getElementById('tiles');
  if (!tiles || !tiles.dataset.live) return;
  var INTERVAL_MS = 2000;
  var MAX_STREAM_FAILURES = 3;

  function poll(url, onUpdate) {
    tiles.dataset.transport = 'poll';
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

  function subscribe(streamUrl, pollUrl, onUpdate) {
    if (!streamUrl || typeof window.EventSource !== 'function') { poll(pollUrl, onUpdate); return; }
    var failures = 0;
    var source = new window.EventSource(streamUrl);
    tiles.dataset.transport = 'stream';
    source.addEventListener('update', function (message) {
      failures = 0;
      try { onUpdate(JSON.parse(message.data)); } catch (e) { /* a torn message: the next one is whole */ }
    });
    source.onerror = function () {
      // EventSource reconnects by itself after a dropped connection; a refused one
      // (closed) or repeated failures mean the stream is not going to work here.
      failures += 1;
      if (source.readyState === window.EventSource.CLOSED || failures >= MAX_STREAM_FAILURES) {
        source.close();
        poll(pollUrl, onUpdate);
      }
    };
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

  subscribe(tiles.dataset.stream, tiles.dataset.live, function (update) {
    update.tiles.forEach(applyTile);
    update.counts.forEach(applyCount);
    tiles.dataset.updates = String(Number(tiles.dataset.updates || 0) + 1);
  });
})();
