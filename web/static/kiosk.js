// Behaviour shared by every staff page. Pages work without it (plain forms); it
// only makes them quicker to use at a touch screen.
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  // The "Acting" dropdown applies as soon as a name is picked.
  document.querySelectorAll('select[data-autosubmit]').forEach(function (select) {
    select.addEventListener('change', function () { select.form.requestSubmit(); });
  });

  // Forms that undo work ask first (cancel a print, deactivate someone).
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // "All" ticks every job of a bulk form.
  document.querySelectorAll('input[data-select-all]').forEach(function (box) {
    box.addEventListener('change', function () {
      var name = box.getAttribute('data-select-all');
      box.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) {
        b.checked = box.checked;
      });
    });
  });
})();
