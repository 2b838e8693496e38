// he studio: the page. Plain JavaScript, no framework, nothing from the
// internet. It talks to the local app only (same origin); the local app
// holds the key and talks to the server.
'use strict';

const $ = (id) => document.getElementById(id);
const PHASE_NAMES = {
  key: 'key', encrypt: 'encrypt', upload: 'upload', server: 'server',
  download: 'download', decrypt: 'decrypt',
};

let catalogue = null;
let settings = null;
// Photos chosen and sent to the local app, not yet queued:
// { id, name, width, height, url, regions: [{x,y,w,h}], li, canvas, img }
let photos = [];
// Job views shown, by id: { el, state }
const shown = new Map();

function say(text) {
  const m = $('message');
  m.textContent = text;
  m.hidden = !text;
}

async function api(method, url, body, type) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = type ? body : JSON.stringify(body);
    init.headers['Content-Type'] = type || 'application/json';
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    throw new Error('he studio does not answer (is it still running?): ' + e.message);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    throw new Error((data && data.error) || text || ('error ' + resp.status));
  }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

let uid = 0;
const nextId = (p) => p + '-' + (++uid);

// ---- the filter chain ----

function filterRow(choice) {
  const li = el('li', { class: 'filter' });
  const sel = el('select', { id: nextId('filter') });
  for (const f of catalogue.filters) {
    sel.append(el('option', { value: f.name, text: f.name + ': ' + f.summary }));
  }
  sel.value = choice.name;
  const label = el('label', { for: sel.id });
  const params = el('span', { class: 'params' });
  const remove = el('button', { type: 'button', text: 'Remove', onclick: () => {
    li.remove();
    renumber();
  } });
  function drawParams(values) {
    params.textContent = '';
    const f = catalogue.filters.find((x) => x.name === sel.value);
    for (const p of f.params) {
      const input = el('input', { id: nextId('param'), 'data-param': p, size: 8,
        value: (values && values[p]) || '' });
      params.append(el('label', { for: input.id, text: p }), input);
    }
  }
  sel.addEventListener('change', () => drawParams({}));
  drawParams(choice.params);
  li.append(label, sel, params, remove);
  $('chain').append(li);
  renumber();
}

function renumber() {
  const rows = [...$('chain').children];
  rows.forEach((li, i) => {
    li.querySelector('label').textContent = 'Filter ' + (i + 1);
    li.querySelector('button').hidden = rows.length < 2;
  });
}

function chainForm() {
  return [...$('chain').children].map((li) => {
    const params = {};
    for (const input of li.querySelectorAll('input[data-param]')) {
      if (input.value.trim()) params[input.dataset.param] = input.value.trim();
    }
    return { name: li.querySelector('select').value, params };
  });
}

// ---- photos and regions ----

async function addFiles(files) {
  for (const file of files) {
    try {
      const q = '/api/photos?name=' + encodeURIComponent(file.name);
      const p = await api('POST', q, file, file.type || 'application/octet-stream');
      addPhoto(p, file);
      say('');
    } catch (e) {
      say('Cannot use ' + file.name + ': ' + e.message);
    }
  }
}

function addPhoto(p, file) {
  const photo = { ...p, url: URL.createObjectURL(file), regions: [] };
  const canvas = el('canvas', { class: 'preview', tabindex: '-1',
    'aria-label': 'Preview of ' + p.name + '; drag to draw a region' });
  const regionText = el('span', { class: 'hint' });
  const fields = ['x', 'y', 'w', 'h'].map((k) => {
    const input = el('input', { id: nextId('region-' + k), size: 5, inputmode: 'numeric' });
    return [el('label', { for: input.id, text: k }), input];
  });
  const add = el('button', { type: 'button', text: 'Add region', onclick: () => {
    const [x, y, w, h] = fields.map(([, i]) => parseInt(i.value, 10));
    if ([x, y, w, h].some((v) => !Number.isFinite(v) || v < 0) || w === 0 || h === 0) {
      say('A region is four whole numbers: x and y of its top-left corner, its width and height, in pixels.');
      return;
    }
    photo.regions.push({ x, y, w, h });
    draw();
  } });
  const clear = el('button', { type: 'button', text: 'Clear regions', onclick: () => {
    photo.regions = [];
    draw();
  } });
  const remove = el('button', { type: 'button', text: 'Remove photo', onclick: () => {
    photos = photos.filter((x) => x !== photo);
    li.remove();
  } });
  const li = el('li', { class: 'photo' },
    el('p', { text: p.name + ' (' + p.width + ' x ' + p.height + ')' }),
    canvas,
    el('div', { class: 'regions' }, ...fields.flat(), add, clear, regionText),
    remove);
  $('photos').append(li);
  photo.li = li;
  const img = new Image();
  img.onload = draw;
  img.src = photo.url;
  photos.push(photo);

  const scale = () => canvas.width / p.width;
  function draw() {
    const maxW = Math.min(480, p.width);
    canvas.width = maxW;
    canvas.height = Math.max(1, Math.round(p.height * maxW / p.width));
    const c = canvas.getContext('2d');
    if (img.complete) c.drawImage(img, 0, 0, canvas.width, canvas.height);
    c.lineWidth = 2;
    c.strokeStyle = '#ffcc00';
    for (const r of photo.regions) {
      c.strokeRect(r.x * scale(), r.y * scale(), r.w * scale(), r.h * scale());
    }
    regionText.textContent = photo.regions.length
      ? photo.regions.length + ' region(s): the filter is kept inside them only.'
      : 'No region: the whole photo is filtered.';
  }
  let start = null;
  const at = (ev) => {
    const b = canvas.getBoundingClientRect();
    const x = (ev.clientX - b.left) * canvas.width / b.width / scale();
    const y = (ev.clientY - b.top) * canvas.height / b.height / scale();
    return [Math.max(0, Math.min(p.width, x)), Math.max(0, Math.min(p.height, y))];
  };
  canvas.addEventListener('pointerdown', (ev) => {
    start = at(ev);
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (!start) return;
    draw();
    const [x, y] = at(ev);
    const c = canvas.getContext('2d');
    c.strokeStyle = '#ffffff';
    c.strokeRect(Math.min(x, start[0]) * scale(), Math.min(y, start[1]) * scale(),
      Math.abs(x - start[0]) * scale(), Math.abs(y - start[1]) * scale());
  });
  canvas.addEventListener('pointerup', (ev) => {
    if (!start) return;
    const [x, y] = at(ev);
    const r = { x: Math.floor(Math.min(x, start[0])), y: Math.floor(Math.min(y, start[1])),
      w: Math.ceil(Math.abs(x - start[0])), h: Math.ceil(Math.abs(y - start[1])) };
    start = null;
    if (r.w > 1 && r.h > 1) photo.regions.push(r);
    draw();
  });
  draw();
}

// ---- jobs ----

async function filterPrivately() {
  if (!photos.length) {
    say('Choose a photo first (the Photo button, or drop one on the page).');
    $('photo').focus();
    return;
  }
  const filters = chainForm();
  const body = {
    filters,
    map: $('map').value,
    key_bits: parseInt($('key-bits').value, 10),
  };
  try {
    for (const photo of [...photos]) {
      await api('POST', '/api/jobs', { ...body, photo: photo.id, regions: photo.regions });
      photos = photos.filter((x) => x !== photo);
      photo.li.remove();
    }
    say('');
  } catch (e) {
    say('The job was not queued: ' + e.message);
  }
}

function fmtSecs(s) {
  if (s < 10) return s.toFixed(1) + ' s';
  if (s < 120) return Math.round(s) + ' s';
  return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
}

function fmtUnits(phase, n) {
  if (phase.name === 'upload' || phase.name === 'download') {
    return n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + ' MiB' : Math.ceil(n / 1024) + ' KiB';
  }
  return String(n);
}

function phaseText(p) {
  if (p.state === 'waiting') return PHASE_NAMES[p.name] + ': waiting';
  let t = PHASE_NAMES[p.name] + ': ';
  if (p.total) t += fmtUnits(p, p.done) + ' of ' + fmtUnits(p, p.total) + ', ';
  t += fmtSecs(p.seconds);
  if (p.state === 'running' && p.eta !== null && p.eta !== undefined) {
    t += ', about ' + fmtSecs(p.eta) + ' left';
  }
  if (p.state === 'done') t += ' (done)';
  if (p.state === 'stopped') t += ' (stopped)';
  return t;
}

function jobCard(j) {
  const card = el('article', { class: 'job', 'data-job': j.id, 'aria-label': 'Job ' + j.name });
  const title = el('h3', { text: j.name + ': ' + j.chain });
  const meta = el('p', { class: 'hint', text: j.width + ' x ' + j.height + ', ' + j.key_bits +
    '-bit key, server ' + j.server + (j.regions ? ', ' + j.regions + ' region(s)' : '') });
  const state = el('p', { class: 'state', role: 'status' });
  const phases = el('ul', { class: 'phases' });
  for (const p of j.phases) {
    const bar = el('progress', { max: 1, value: 0, id: nextId('bar') });
    const label = el('label', { for: bar.id });
    phases.append(el('li', { 'data-phase': p.name }, label, bar));
  }
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const button = el('button', { type: 'button', class: 'cancel' });
  button.addEventListener('click', async () => {
    try {
      await api('DELETE', '/api/jobs/' + j.id);
      if (['done', 'failed', 'cancelled'].includes(card.dataset.state)) {
        card.remove();
        shown.delete(j.id);
        $('no-jobs').hidden = shown.size > 0;
      }
    } catch (e) {
      say(e.message);
    }
  });
  const result = el('div', { class: 'result' });
  card.append(title, meta, state, phases, error, button, result);
  return card;
}

function updateJob(card, j) {
  card.dataset.state = j.state;
  const words = {
    queued: 'Queued: waiting for the jobs before it.',
    running: 'Running.',
    done: 'Done.',
    failed: 'Failed.',
    cancelled: 'Cancelled.',
  };
  card.querySelector('.state').textContent = words[j.state] || j.state;
  for (const p of j.phases) {
    const li = card.querySelector('[data-phase="' + p.name + '"]');
    li.querySelector('label').textContent = phaseText(p);
    const bar = li.querySelector('progress');
    if (p.total) bar.value = Math.min(1, p.done / p.total);
    else if (p.state === 'done') bar.value = 1;
    else if (p.state === 'running') bar.removeAttribute('value');
  }
  const error = card.querySelector('.error');
  error.hidden = !j.error || j.state === 'cancelled';
  error.textContent = j.error || '';
  const finished = ['done', 'failed', 'cancelled'].includes(j.state);
  const button = card.querySelector('.cancel');
  button.textContent = finished ? 'Remove' : 'Cancel';
  button.setAttribute('aria-label', (finished ? 'Remove job ' : 'Cancel job ') + j.name);
  if (j.state === 'done' && !card.querySelector('.result').childElementCount) {
    drawResult(card.querySelector('.result'), j);
  }
}

function drawResult(box, j) {
  const base = '/api/jobs/' + j.id + '/';
  const fig = (src, caption) => el('figure', {},
    el('img', { src: base + src, alt: caption + ' of ' + j.name,
      class: src === 'server-view.png' ? 'seen' : null }),
    el('figcaption', { text: caption }));
  const sliderId = nextId('slider');
  const before = el('img', { src: base + 'original.png', alt: '', class: 'before' });
  const after = el('img', { src: base + 'result.png', alt: 'Before and after comparison of ' + j.name });
  const range = el('input', { type: 'range', min: 0, max: 100, value: 50, id: sliderId });
  const clip = () => { before.style.clipPath = 'inset(0 ' + (100 - range.value) + '% 0 0)'; };
  range.addEventListener('input', clip);
  clip();
  const timings = el('table', { class: 'timings' },
    el('caption', { text: 'Timings' }),
    ...j.phases.map((p) => el('tr', {}, el('th', { scope: 'row', text: p.name }),
      el('td', { text: fmtSecs(p.seconds) }))));
  if (j.server_seconds !== null && j.server_seconds !== undefined) {
    timings.append(el('tr', {}, el('th', { scope: 'row', text: 'filter (on the server)' }),
      el('td', { text: fmtSecs(j.server_seconds) })));
  }
  box.append(
    el('div', { class: 'figures' },
      fig('original.png', 'Original'),
      fig('result.png', 'Result'),
      fig('server-view.png', 'What the server saw')),
    el('div', { class: 'compare' }, after, before),
    el('div', { class: 'row' }, el('label', { for: sliderId, text: 'Before and after' }), range),
    el('p', { class: 'verified', text: j.verification || '' }),
    timings,
    el('p', {}, el('a', { href: base + 'download', download: '', class: 'download',
      text: 'Download result' })));
}

function showJobs(jobs) {
  const seen = new Set();
  for (const j of jobs) {
    seen.add(j.id);
    let card = shown.get(j.id);
    if (!card) {
      card = jobCard(j);
      shown.set(j.id, card);
      $('jobs').prepend(card);
    }
    updateJob(card, j);
  }
  for (const [id, card] of shown) {
    if (!seen.has(id)) {
      card.remove();
      shown.delete(id);
    }
  }
  $('no-jobs').hidden = shown.size > 0;
}

function listen() {
  const source = new EventSource('/api/events');
  source.addEventListener('jobs', (ev) => {
    try {
      showJobs(JSON.parse(ev.data));
      if ($('message').dataset.lost) {
        delete $('message').dataset.lost;
        say('');
      }
    } catch (e) {
      say('The studio sent something this page cannot read: ' + e.message);
    }
  });
  source.addEventListener('error', () => {
    $('message').dataset.lost = '1';
    say('Lost contact with he studio; trying again (is it still running?).');
  });
}

// ---- the connection ----

async function checkConnection() {
  const out = $('connection');
  out.className = '';
  out.textContent = 'Checking ' + $('server').value + ' ...';
  const token = $('token').value;
  try {
    const info = await api('POST', '/api/connection', {
      server: $('server').value,
      token: token === '' ? null : token,
    });
    out.textContent = 'Connected: ' + info.service + ' ' + info.version + ' at ' +
      $('server').value + '; it takes uploads up to ' +
      Math.floor(info.max_body_bytes / (1 << 20)) + ' MiB. Jobs go there now.';
    out.className = 'ok';
  } catch (e) {
    out.textContent = 'Not connected: ' + e.message;
    out.className = 'error';
  }
}

// ---- start ----

async function start() {
  try {
    [catalogue, settings] = await Promise.all([
      api('GET', '/api/catalogue'), api('GET', '/api/settings')]);
  } catch (e) {
    say('The studio could not start this page: ' + e.message);
    return;
  }
  $('server').value = settings.server;
  $('token').placeholder = settings.token_set ? '(set when he studio started)' : '(none)';
  const keySel = $('key-bits');
  if (settings.key_file_bits) {
    keySel.append(el('option', { value: 3072, text: settings.key_file_bits + ' bits, from --key' }));
    keySel.disabled = true;
  } else {
    for (const b of catalogue.key_sizes) keySel.append(el('option', { value: b, text: b + ' bits' }));
    keySel.value = catalogue.default_key_bits;
  }
  filterRow(catalogue.default);
  $('add-filter').addEventListener('click', () => filterRow({ name: 'mean', params: {} }));
  $('check').addEventListener('click', checkConnection);
  $('go').addEventListener('click', filterPrivately);
  $('photo').addEventListener('change', (ev) => {
    addFiles([...ev.target.files]);
    ev.target.value = '';
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    addFiles([...ev.dataTransfer.files]);
  });
  document.body.dataset.ready = '1';
  listen();
}

window.addEventListener('error', (ev) => say('Something went wrong on this page: ' + ev.message));
start();
