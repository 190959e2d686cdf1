// The AtomixOS first-boot console's script. Ours (no library): the form is sent with fetch, the
// answer (an HTML fragment the device rendered and escaped) replaces the #job-status panel,
// and a job's panel is followed with an EventSource on /ui/jobs/<id>/events until `done`.
// SPDX-License-Identifier: MIT OR Apache-2.0
'use strict';

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const form = $('#apply-form');
  if (!form) return;
  const fields = $('#apply-fields');
  const fileInput = $('#config-file');
  const text = $('#config-text');
  const drop = $('#drop-zone');
  const picked = $('#picked');
  const pickedName = $('#picked-name');
  const button = $('#apply-button');
  const hint = $('#apply-hint');
  const TERMINAL = ['succeeded', 'failed'];
  let following = null; // the EventSource of the job being followed
  let applied = false; // the device is provisioned: the form stays closed

  const size = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB`
    : `${(n / 1048576).toFixed(1)} MiB`);

  function chosenFile() {
    return fileInput.files && fileInput.files.length ? fileInput.files[0] : null;
  }

  // The button and the hint follow what would be sent: the file wins over pasted text.
  function refresh() {
    const file = chosenFile();
    const pasted = text.value.trim() !== '';
    picked.hidden = !file;
    drop.classList.toggle('has-file', Boolean(file));
    if (file) pickedName.textContent = `${file.name} · ${size(file.size)}`;
    if (applied) return;
    button.disabled = Boolean(following) || (!file && !pasted);
    if (file && pasted) hint.textContent = 'The file is applied; the pasted text is ignored.';
    else if (file) hint.textContent = 'Ready to apply the file.';
    else if (pasted) hint.textContent = 'Ready to apply the pasted config.toml.';
    else hint.textContent = 'Choose, drop or paste a configuration first.';
  }

  function working(label) {
    button.disabled = true;
    button.classList.add('working');
    button.textContent = label;
  }

  function idle() {
    following = null;
    button.classList.remove('working');
    button.textContent = 'Apply configuration';
    refresh();
  }

  function provisioned() {
    following = null;
    applied = true;
    fields.disabled = true;
    button.classList.remove('working');
    button.textContent = 'Applied';
    button.disabled = true;
    hint.textContent = 'The device is provisioned.';
    const pill = $('.pill');
    if (pill) {
      pill.className = 'pill pill-ok';
      pill.lastChild.textContent = 'Provisioned';
    }
  }

  // Replaces the panel with a fragment from the device; returns the new panel.
  function show(html) {
    const template = document.createElement('template');
    template.innerHTML = html.trim();
    const next = template.content.firstElementChild;
    if (!next || next.id !== 'job-status') {
      return notice('Unexpected answer', 'The device answered with something this page cannot show.');
    }
    $('#job-status').replaceWith(next);
    const steps = $('.steps', next);
    if (steps) steps.scrollTop = steps.scrollHeight;
    return next;
  }

  // A panel made here (the text is set as text, never as markup).
  function notice(title, detail) {
    const panel = document.createElement('section');
    panel.id = 'job-status';
    panel.className = 'card job job-failed';
    panel.dataset.state = 'failed';
    panel.setAttribute('aria-live', 'polite');
    const head = document.createElement('header');
    head.className = 'job-head';
    const h2 = document.createElement('h2');
    h2.textContent = title;
    head.append(h2);
    const p = document.createElement('p');
    p.textContent = detail;
    panel.append(head, p);
    $('#job-status').replaceWith(panel);
    return panel;
  }

  // What the device said in a JSON refusal (401, 404, 413), or the status line.
  function detail(status, body) {
    try {
      const value = JSON.parse(body);
      return value.detail || value.error || `HTTP ${status}`;
    } catch (_) {
      return `HTTP ${status}`;
    }
  }

  // Follows the job of `panel` while it runs; settles the form when it ends.
  function follow(panel) {
    const id = panel.dataset.job;
    const state = panel.dataset.state;
    if (!id || TERMINAL.includes(state)) return settle(panel);
    if (following) following.close();
    working('Applying…');
    const source = new EventSource(`/ui/jobs/${encodeURIComponent(id)}/events`);
    following = source;
    source.onmessage = (event) => {
      if (event.data) show(event.data);
    };
    source.addEventListener('done', () => {
      source.close();
      settle($('#job-status'));
    });
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      source.close();
      // One last look: the fragment of a finished job, or the reconnect after provisioning.
      fetch(`/ui/jobs/${encodeURIComponent(id)}`)
        .then((res) => (res.ok ? res.text() : Promise.reject(new Error(`HTTP ${res.status}`))))
        .then((html) => settle(show(html)))
        .catch(() => {
          notice('Lost the connection to the device',
            'Its provisioning service may have moved to its LAN address. Reload this page, ' +
            'or look up the job with an operator client.');
          idle();
        });
    };
  }

  function settle(panel) {
    if (panel && panel.dataset.state === 'succeeded') provisioned();
    else idle();
  }

  fileInput.addEventListener('change', refresh);
  text.addEventListener('input', refresh);
  $('#picked-clear').addEventListener('click', () => {
    fileInput.value = '';
    refresh();
  });
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    drop.addEventListener(type, () => drop.classList.remove('dragging'));
  }
  drop.addEventListener('drop', (event) => {
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) return;
    fileInput.files = files;
    refresh();
  });
  // A file dropped beside the zone must not make the browser leave the console to open it.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (following || applied) return;
    working('Sending…');
    let res;
    let body;
    try {
      res = await fetch(form.action, { method: 'POST', body: new FormData(form) });
      body = await res.text();
    } catch (err) {
      notice('The device did not answer', String(err));
      return idle();
    }
    const type = res.headers.get('content-type') || '';
    let panel;
    if (type.startsWith('text/html')) follow((panel = show(body)));
    else {
      panel = notice(`Refused (HTTP ${res.status})`, detail(res.status, body));
      idle();
    }
    // On a phone the panel is below the form: bring the answer into view.
    if (panel.getBoundingClientRect().top > window.innerHeight * 0.6) {
      panel.scrollIntoView({ block: 'start', behavior: 'smooth' });
    }
  });

  refresh();
})();
