// The submission form: checks before upload, then an XHR upload with a progress bar
// to the same POST /api/v1/jobs the command line uses.
(function () {
  'use strict';
  var form = document.getElementById('submit-form');
  if (!form) return;
  var errorBox = document.getElementById('submit-error');
  var bar = document.getElementById('upload-progress');
  var percent = document.getElementById('upload-percent');
  var button = document.getElementById('submit-button');
  var maxBytes = Number(form.dataset.maxMb) * 1024 * 1024;
  var accepted = form.querySelector('input[type=file]').accept.split(',');

  function problem() {
    var field = function (name) { return form.elements[name]; };
    if (!field('student_name').value.trim()) return 'Please enter your name.';
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(field('student_email').value.trim())) return 'Please enter a valid e-mail address.';
    var file = field('file').files[0];
    if (!file) return 'Please choose your model file.';
    var name = file.name.toLowerCase();
    if (!accepted.some(function (ext) { return name.endsWith(ext); })) return 'The file must be one of ' + accepted.join(' ') + '.';
    if (file.size === 0) return 'The file is empty.';
    if (file.size > maxBytes) return 'The file is larger than ' + form.dataset.maxMb + ' MB.';
    if (!field('acknowledged_minimum_charge').checked) return 'Please tick that you understand the minimum charge.';
    return null;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.classList.toggle('hidden', !message);
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var message = problem();
    showError(message || '');
    if (message) return;
    var xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.setRequestHeader('Accept', 'application/json');
    bar.classList.remove('hidden');
    button.disabled = true;
    xhr.upload.addEventListener('progress', function (e) {
      if (!e.lengthComputable) return;
      bar.value = Math.round((e.loaded / e.total) * 100);
      percent.textContent = bar.value + '%';
    });
    xhr.addEventListener('load', function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      button.disabled = false;
      if (xhr.status === 200 || xhr.status === 201) {
        form.classList.add('hidden');
        document.getElementById('submit-done').classList.remove('hidden');
        document.getElementById('submit-done-text').textContent = body.duplicate
          ? 'You had already sent this file: it is job ' + body.id + ' (' + body.display_name + ').'
          : 'Your job is number ' + body.id + ' (' + body.display_name + '). Watch your e-mail: the lab sends the cost for you to confirm.';
      } else {
        bar.classList.add('hidden');
        showError((body.error && body.error.message) || 'The upload failed (' + xhr.status + '). Please try again.');
      }
    });
    xhr.addEventListener('error', function () {
      button.disabled = false;
      showError('The upload was interrupted. Please check your connection and try again.');
    });
    xhr.send(new FormData(form));
  });
})();
