// The dashboard's script (/dashboard/app.js), compiled in. The page builds every element with
// createElement and puts every value in as text (see dashboard.hpp): data read from Redis
// (payloads, errors, event reasons) cannot inject markup or scripts.
#include <corvo/ops/dashboard.hpp>

namespace corvo::ops {

std::string_view dashboard_js() noexcept {
  static constexpr std::string_view text =
      R"corvo(// corvo dashboard. Every value from the server is inserted as text (createTextNode), never
// as markup, so data read from Redis cannot inject HTML or scripts.
'use strict';

const state = {
  token: sessionStorage.getItem('corvo-token') || '',
  csrf: null,
  samples: [],       // {t, runs, p50, p90, p99} for the charts
  timer: null,
};

class Unauthorized extends Error {}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') {
      node.addEventListener(k.slice(2), v);
    } else if (v !== undefined && v !== null && v !== false) {
      node.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setStatus(text, isError) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

async function api(path, options) {
  const opts = options || {};
  const headers = Object.assign({}, opts.headers || {});
  if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
  const res = await fetch(path, Object.assign({}, opts, {headers, credentials: 'omit'}));
  if (res.status === 401) throw new Unauthorized('token required');
  const body = await res.json();
  if (!res.ok) {
    const error = new Error(body.error || res.statusText);
    error.status = res.status;  // 404: no such task; 409: task events are off
    throw error;
  }
  return body;
}

async function post(path, params) {
  if (!state.csrf) state.csrf = (await api('/api/session')).csrf_token;
  return api(path, {
    method: 'POST',
    headers: {'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token': state.csrf},
    body: new URLSearchParams(params).toString(),
  });
}

function fmtTime(ms) {
  if (!ms) return '';
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC');
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return '–';
  if (Math.abs(s) < 1) return (s * 1000).toFixed(1) + ' ms';
  return s.toFixed(2) + ' s';
}

function table(headers, rows, attrs) {
  return el('table', attrs || {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

function numCell(value, attrs) {
  return el('td', Object.assign({class: 'num'}, attrs || {}), value);
}

function params() {
  const hash = location.hash.replace(/^#/, '');
  const q = hash.indexOf('?');
  const view = (q < 0 ? hash : hash.slice(0, q)) || 'overview';
  return {view, args: new URLSearchParams(q < 0 ? '' : hash.slice(q + 1))};
}

function go(view, args) {
  const q = new URLSearchParams(args || {}).toString();
  location.hash = view + (q ? '?' + q : '');
}

// ---- charts -------------------------------------------------------------------------------

function drawChart(canvas, series, unit) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#dde1e8';
  ctx.strokeRect(pad, 4, w - pad - 4, h - pad);
  let max = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  if (max <= 0) max = 1;
  ctx.fillStyle = '#5b6475';
  ctx.font = '10px sans-serif';
  ctx.fillText(unit(max), 2, 12);
  ctx.fillText(unit(0), 2, h - pad);
  const n = Math.max(2, ...series.map((s) => s.values.length));
  series.forEach((s, i) => {
    ctx.strokeStyle = s.color;
    ctx.beginPath();
    let started = false;
    s.values.forEach((v, j) => {
      if (v === null) return;
      const x = pad + (w - pad - 4) * (j / (n - 1));
      const y = 4 + (h - pad) * (1 - v / max);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    });
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.name, pad + 6 + i * 60, h - 8);
  });
}

function recordSample(overview) {
  let runs = 0, p50 = null, p90 = null, p99 = null;
  for (const n of overview.namespaces) {
    if (n.runs_total !== undefined) runs += n.runs_total;
    if (n.lateness && n.lateness.count > 0) {
      p50 = Math.max(p50 || 0, n.lateness.p50);
      p90 = Math.max(p90 || 0, n.lateness.p90);
      p99 = Math.max(p99 || 0, n.lateness.p99);
    }
  }
  state.samples.push({t: Date.now(), runs, p50, p90, p99});
  if (state.samples.length > 150) state.samples.shift();  // 5 minutes at one sample per 2 s
}

function drawCharts() {
  const rate = document.getElementById('chart-rate');
  const late = document.getElementById('chart-lateness');
  if (!rate || !late) return;
  const rates = [];
  for (let i = 1; i < state.samples.length; i++) {
    const a = state.samples[i - 1], b = state.samples[i];
    rates.push(Math.max(0, (b.runs - a.runs) / ((b.t - a.t) / 1000)));
  }
  drawChart(rate, [{name: 'runs/s', color: '#2f6fdf', values: rates}], (v) => v.toFixed(1));
  drawChart(late, [
    {name: 'p50', color: '#1e7d32', values: state.samples.map((s) => s.p50)},
    {name: 'p90', color: '#b26a00', values: state.samples.map((s) => s.p90)},
    {name: 'p99', color: '#b3261e', values: state.samples.map((s) => s.p99)},
  ], fmtSeconds);
}

// ---- views --------------------------------------------------------------------------------

function healthTable(health) {
  if (!health) return el('p', {}, 'No health monitor.');
  return table(['Dependency', 'State', 'Detail', 'Transitions'],
    health.dependencies.map((d) => el('tr', {'data-dependency': d.name},
      el('td', {}, d.name),
      el('td', {class: 'state-' + d.state}, d.state),
      el('td', {}, d.detail || ''),
      numCell(d.transitions !== undefined ? d.transitions : ''))),
    {id: 'health-table'});
}

async function viewOverview(main) {
  const o = await api('/api/overview');
  recordSample(o);
  main.replaceChildren(
    el('h2', {}, 'Namespaces'),
    table(['Namespace', 'Scheduled', 'Due', 'In flight', 'Dead', 'Lateness p99 (60 s)', 'Claims', ''],
      o.namespaces.map((n) => el('tr', {'data-ns': n.name},
        el('td', {}, el('a', {href: '#schedule?' + new URLSearchParams({ns: n.name})}, n.name)),
        numCell(n.scheduled, {'data-field': 'scheduled'}),
        numCell(n.due, {'data-field': 'due'}),
        numCell(n.in_flight, {'data-field': 'in_flight'}),
        numCell(n.dead, {'data-field': 'dead'}),
        numCell(n.lateness ? fmtSeconds(n.lateness.p99) : '–'),
        el('td', {'data-field': 'paused'}, pauseText(n)),
        el('td', {}, pauseButton(n.name, '', n.paused)))),
      {id: 'namespaces'}),
    el('div', {class: 'charts'},
      el('div', {class: 'chart'}, el('h3', {}, 'Task runs per second'),
        el('canvas', {id: 'chart-rate', width: 420, height: 160})),
      el('div', {class: 'chart'}, el('h3', {}, 'Lateness percentiles (last 60 s)'),
        el('canvas', {id: 'chart-lateness', width: 420, height: 160}))),
    el('h2', {}, 'Next due'),
    el('div', {id: 'next-due'}),
    el('h2', {}, 'Queues'),
    queuesTable(o.queues),
    el('h2', {}, 'Health'),
    healthTable(o.health));
  drawCharts();
  const next = document.getElementById('next-due');
  for (const n of o.namespaces) {
    const page = await api('/api/tasks?' + new URLSearchParams({ns: n.name, limit: 5}));
    next.appendChild(tasksTable(n.name, page.tasks));
  }
}

// "running", "paused", or "paused types: a, b" (claims of those types are held back).
function pauseText(n) {
  if (n.paused) return 'paused';
  return n.paused_types.length ? 'paused types: ' + n.paused_types.join(', ') : 'running';
}

// Pauses or resumes a namespace (type '') or one task type; POST with the CSRF token.
function pauseButton(ns, type, paused) {
  const verb = paused ? 'resume' : 'pause';
  return el('button', {class: verb, 'data-action': verb, onclick: async () => {
    await post('/api/' + verb, {ns, type});
    setStatus((paused ? 'resumed ' : 'paused ') + (type ? 'type ' + type : ns)); render();
  }}, paused ? 'Resume' : 'Pause');
}

function tasksTable(ns, tasks) {
  return table(['Namespace', 'Id', 'Type', 'Due', 'Attempts', 'Recurrence'],
    tasks.map((t) => el('tr', {'data-task': t.id},
      el('td', {}, ns),
      el('td', {}, el('a', {href: '#task?' + new URLSearchParams({ns, id: t.id})}, t.id)),
      el('td', {}, t.type),
      el('td', {}, fmtTime(t.due_ms)),
      numCell(t.attempts + ' / ' + t.max_attempts),
      el('td', {}, t.recurrence))));
}

async function namespaceNames() {
  return (await api('/api/overview')).namespaces.map((n) => n.name);
}

function namespacePicker(names, current, view, extra) {
  return el('select', {id: 'ns-select', onchange: (e) =>
    go(view, Object.assign({}, extra || {}, {ns: e.target.value}))},
    names.map((n) => el('option', {value: n, selected: n === current}, n)));
}

async function viewSchedule(main, args) {
  const o = await api('/api/overview');
  const names = o.namespaces.map((n) => n.name);
  const ns = args.get('ns') || names[0];
  if (!ns) { main.replaceChildren(el('p', {}, 'No namespaces.')); return; }
  const info = o.namespaces.find((n) => n.name === ns) || {paused: false, paused_types: []};
  const typeInput = el('input', {id: 'pause-type', placeholder: 'task type'});
  const offset = Number(args.get('offset') || 0), limit = 50, q = args.get('q') || '';
  const page = await api('/api/tasks?' + new URLSearchParams({ns, offset, limit, q}));
  const search = el('input', {id: 'search', type: 'search', value: q, placeholder: 'id or type contains…'});
  main.replaceChildren(
    el('h2', {}, 'Schedule'),
    el('form', {class: 'toolbar', onsubmit: (e) => { e.preventDefault(); go('schedule', {ns, q: search.value}); }},
      namespacePicker(names, ns, 'schedule'), search, el('button', {type: 'submit'}, 'Search')),
    el('div', {class: 'toolbar', id: 'pauses'},
      el('span', {}, 'Claims: ' + pauseText(info)), pauseButton(ns, '', info.paused),
      ...info.paused_types.map((t) => el('span', {'data-paused-type': t}, t, pauseButton(ns, t, true))),
      typeInput,
      el('button', {id: 'pause-type-button', onclick: async () => {
        if (!typeInput.value) return;
        await post('/api/pause', {ns, type: typeInput.value});
        setStatus('paused type ' + typeInput.value); render();
      }}, 'Pause type')),
    page.tasks.length ? tasksTable(ns, page.tasks) : el('p', {}, 'No tasks.'),
    el('div', {class: 'toolbar'},
      offset > 0 ? el('button', {onclick: () => go('schedule', {ns, q, offset: Math.max(0, offset - limit)})}, 'Previous') : null,
      page.tasks.length === limit ? el('button', {onclick: () => go('schedule', {ns, q, offset: offset + limit})}, 'Next') : null,
      page.truncated ? el('span', {}, 'searched the first ' + page.scanned + ' tasks') : null));
}

async function viewTask(main, args) {
  const ns = args.get('ns'), id = args.get('id');
  // A task that completed or was cancelled is gone from the store; its events remain.
  const t = await api('/api/task?' + new URLSearchParams({ns, id})).catch((e) => {
    if (e.status === 404) return null;
    throw e;
  });
  const timeline = await taskTimeline(ns, id);
  if (!t) {
    main.replaceChildren(el('h2', {}, 'Task ' + id),
      el('p', {id: 'task-gone'}, 'No task ' + id + ' in ' + ns + ' now (it completed, was ' +
        'cancelled or never existed).'), timeline);
    return;
  }
  const rows = [['Namespace', ns], ['Id', t.id], ['Type', t.type], ['State', t.state],
    ['Due', fmtTime(t.due_ms)], ['Occurrence', fmtTime(t.occurrence_ms)],
    ['Attempts', t.attempts + ' / ' + t.max_attempts], ['Recurrence', t.recurrence || 'none'],
    ['Last error', t.last_error || '']];
  main.replaceChildren(
    el('h2', {}, 'Task'),
    el('dl', {id: 'task-detail'}, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]),
      el('dt', {}, 'Payload'), el('dd', {}, el('pre', {id: 'task-payload'}, t.payload))),
    el('div', {class: 'toolbar'},
      t.state === 'dead' ? el('button', {id: 'task-replay', onclick: async () => {
        await post('/api/dead/replay', {ns, id}); setStatus('replayed ' + id); render();
      }}, 'Replay') : null,
      el('button', {onclick: async () => {
        if (!confirm('Cancel task ' + id + '?')) return;
        await post('/api/task/cancel', {ns, id}); setStatus('cancelled ' + id); go('schedule', {ns});
      }}, 'Cancel task')),
    timeline);
}

// ---- task events --------------------------------------------------------------------------

const eventKinds = ['scheduled', 'started', 'succeeded', 'failed', 'dead', 'cancelled'];

// The message of a 409 (events off), shown in place of the events; other errors go on up.
function eventsOff(e, id) {
  if (e.status !== 409) throw e;
  return el('p', {id, class: 'error'}, e.message);
}

// A task's events, oldest first (the newest 500), as a timeline.
async function taskTimeline(ns, id) {
  const title = el('h2', {}, 'Events');
  let page;
  try {
    page = await api('/api/events?' + new URLSearchParams({ns, task: id, limit: 500}));
  } catch (e) {
    return el('section', {}, title, eventsOff(e, 'task-events-off'));
  }
  if (!page.events.length) return el('section', {}, title, el('p', {id: 'task-events-none'}, 'No events held for this task.'));
  return el('section', {}, title,
    page.more ? el('p', {}, 'The newest 500 of ' + page.matched + ' events.') : null,
    table(['Time', 'Kind', 'Attempt', 'Due', 'Reason', 'Source'],
      page.events.slice().reverse().map((e) => el('tr', {'data-kind': e.kind},
        el('td', {class: 'nowrap'}, fmtTime(e.at_ms)),
        el('td', {class: 'kind-' + e.kind}, e.kind),
        numCell(e.attempt || ''),
        el('td', {class: 'nowrap'}, fmtTime(e.due_ms)),
        el('td', {'data-field': 'reason'}, e.reason),
        el('td', {class: 'nowrap'}, e.source))),
      {id: 'task-events'}));
}

// The namespace's recent events, newest first, filtered by task id and kind, 50 a page.
async function viewEvents(main, args) {
  const names = await namespaceNames();
  const ns = args.get('ns') || names[0];
  if (!ns) { main.replaceChildren(el('p', {}, 'No namespaces.')); return; }
  const task = args.get('task') || '', kind = args.get('kind') || '';
  const offset = Number(args.get('offset') || 0), limit = 50;
  const taskInput = el('input', {id: 'events-task', type: 'search', value: task, placeholder: 'task id'});
  const kindSelect = el('select', {id: 'events-kind'},
    el('option', {value: ''}, 'every kind'),
    eventKinds.map((k) => el('option', {value: k, selected: k === kind}, k)));
  const filters = el('form', {class: 'toolbar', onsubmit: (e) => {
    e.preventDefault();
    go('events', {ns, task: taskInput.value, kind: kindSelect.value});
  }}, namespacePicker(names, ns, 'events'), taskInput, kindSelect,
    el('button', {type: 'submit', id: 'events-filter'}, 'Filter'));
  let page;
  try {
    page = await api('/api/events?' + new URLSearchParams({ns, task, kinds: kind, offset, limit}));
  } catch (e) {
    main.replaceChildren(el('h2', {}, 'Events'), filters, eventsOff(e, 'events-off'));
    return;
  }
  const shown = page.events.length;
  main.replaceChildren(
    el('h2', {}, 'Events'),
    filters,
    el('p', {id: 'events-summary'}, shown ? 'Events ' + (offset + 1) + '–' + (offset + shown) +
      ' of ' + page.matched + ', newest first.' : 'No events.'),
    shown ? table(['Time', 'Kind', 'Task', 'Type', 'Attempt', 'Reason', 'Source', 'Shard'],
      page.events.map((e) => el('tr', {'data-kind': e.kind, 'data-task': e.task},
        el('td', {class: 'nowrap'}, fmtTime(e.at_ms)),
        el('td', {class: 'kind-' + e.kind}, e.kind),
        el('td', {}, el('a', {href: '#task?' + new URLSearchParams({ns, id: e.task})}, e.task)),
        el('td', {}, e.type),
        numCell(e.attempt || ''),
        el('td', {'data-field': 'reason'}, e.reason),
        el('td', {class: 'nowrap'}, e.source),
        numCell(e.shard))),
      {id: 'events-table'}) : null,
    el('div', {class: 'toolbar'},
      offset > 0 ? el('button', {id: 'events-newer', onclick: () =>
        go('events', {ns, task, kind, offset: Math.max(0, offset - limit)})}, 'Newer') : null,
      page.more ? el('button', {id: 'events-older', onclick: () =>
        go('events', {ns, task, kind, offset: offset + limit})}, 'Older') : null));
}

async function viewDead(main, args) {
  const names = await namespaceNames();
  const ns = args.get('ns') || names[0];
  if (!ns) { main.replaceChildren(el('p', {}, 'No namespaces.')); return; }
  const page = await api('/api/dead?' + new URLSearchParams({ns, limit: 100}));
  main.replaceChildren(
    el('h2', {}, 'Dead letters'),
    el('div', {class: 'toolbar'}, namespacePicker(names, ns, 'dead'),
      page.tasks.length ? el('button', {id: 'purge-all', onclick: async () => {
        if (!confirm('Purge every dead task of ' + ns + '?')) return;
        const r = await post('/api/dead/purge', {ns, id: '*'}); setStatus('purged ' + r.purged); render();
      }}, 'Purge all') : null),
    page.tasks.length === 0 ? el('p', {id: 'no-dead'}, 'No dead letters.') :
    table(['Id', 'Type', 'Attempts', 'Last error', 'Payload', ''],
      page.tasks.map((t) => el('tr', {'data-task': t.id},
        el('td', {}, el('a', {href: '#task?' + new URLSearchParams({ns, id: t.id})}, t.id)),
        el('td', {}, t.type),
        numCell(t.attempts),
        el('td', {}, t.last_error),
        el('td', {}, el('pre', {class: 'payload'}, t.payload)),
        el('td', {},
          el('button', {class: 'replay', onclick: async () => {
            const r = await post('/api/dead/replay', {ns, id: t.id});
            setStatus(r.replayed ? 'replayed ' + t.id : t.id + ' was not dead'); render();
          }}, 'Replay'),
          el('button', {class: 'purge', onclick: async () => {
            const r = await post('/api/dead/purge', {ns, id: t.id});
            setStatus('purged ' + r.purged); render();
          }}, 'Purge')))),
      {id: 'dead-table'}));
}

async function viewStreams(main, args) {
  const data = await api('/api/streams');
  const parts = [el('h2', {}, 'Streams')];
  if (data.streams.length === 0) parts.push(el('p', {}, 'No streams.'));
  for (const s of data.streams) {
    parts.push(el('h2', {}, s.stream + (s.length !== undefined ? ' (' + s.length + ' entries)' : '')));
    if (s.error) parts.push(el('p', {class: 'error'}, s.error));
    parts.push(table(['Group', 'Pending', 'Lag', 'Last delivered', 'Consumers (pending, idle)'],
      s.groups.map((g) => el('tr', {'data-group': g.name},
        el('td', {}, g.name), numCell(g.pending), numCell(g.lag === null ? '–' : g.lag),
        el('td', {}, g.last_delivered_id),
        el('td', {}, g.consumers.map((c) =>
          el('div', {}, c.name + ' (' + c.pending + ', ' + (c.idle_ms / 1000).toFixed(1) + ' s)')))))));
    if (s.dead_letter_stream) {
      parts.push(el('p', {}, 'Dead letters in ' + s.dead_letter_stream + ': ' + s.dead_letters +
        (s.dead_letters_more ? '+' : '') + ' ',
        el('a', {href: '#stream-dead?' + new URLSearchParams({stream: s.stream})}, 'show')));
    }
  }
  main.replaceChildren(...parts);
}

async function viewStreamDead(main, args) {
  const stream = args.get('stream');
  const page = await api('/api/stream/dead?' + new URLSearchParams({stream, limit: 100}));
  const fields = (f) => el('pre', {}, f.map(([k, v]) => k + ' = ' + v).join('\n'));
  main.replaceChildren(
    el('h2', {}, 'Dead letters of ' + stream),
    table(['Id', 'Source id', 'Group', 'Deliveries', 'Reason', 'Fields', ''],
      page.entries.map((d) => el('tr', {'data-dead': d.id},
        el('td', {}, d.id), el('td', {}, d.source_id), el('td', {}, d.group),
        numCell(d.deliveries), el('td', {}, d.reason), el('td', {}, fields(d.fields)),
        el('td', {}, el('button', {class: 'replay', onclick: async () => {
          const r = await post('/api/stream/dead/replay', {stream, id: d.id});
          setStatus(d.id + ': ' + r.status); render();
        }}, 'Replay'))))),
    ...(page.malformed.length ? [el('h2', {}, 'Malformed'),
      table(['Id', 'Problem', 'Fields'], page.malformed.map((m) =>
        el('tr', {}, el('td', {}, m.id), el('td', {}, m.problem),
          el('td', {}, fields(m.fields)))))] : []));
}

function queuesTable(queues) {
  if (!queues.length) return el('p', {}, 'No queues.');
  return table(['Queue', 'Depth', 'Processing', 'Dead', 'Consumers'],
    queues.map((q) => el('tr', {'data-queue': q.name},
      el('td', {}, q.name), numCell(q.depth, {'data-field': 'depth'}),
      numCell(q.processing, {'data-field': 'processing'}),
      el('td', {class: 'num', 'data-field': 'dead'}, q.dead ? el('a',
        {href: '#queue-dead?' + new URLSearchParams({queue: q.name})}, String(q.dead)) : '0'),
      el('td', {}, q.consumers.map((c) =>
        el('div', {}, c.id + ': ' + c.processing + (c.alive ? '' : ' (heartbeat expired)')))))),
    {id: 'queues'});
}

async function viewQueues(main) {
  const o = await api('/api/overview');
  main.replaceChildren(el('h2', {}, 'Queues'), queuesTable(o.queues));
}

async function viewQueueDead(main, args) {
  const queue = args.get('queue');
  const page = await api('/api/queue/dead?' + new URLSearchParams({queue, limit: 100}));
  const act = (path, id, done) => async () => {
    const r = await post(path, {queue, id});
    setStatus(done(r)); render();
  };
  main.replaceChildren(
    el('h2', {}, 'Dead letters of queue ' + queue),
    el('p', {id: 'queue-dead-actions'},
      el('button', {class: 'replay-all', onclick: act('/api/queue/dead/replay', '*',
        (r) => 'replayed ' + r.replayed)}, 'Replay all'), ' ',
      el('button', {class: 'purge-all', onclick: act('/api/queue/dead/purge', '*',
        (r) => 'purged ' + r.purged)}, 'Purge all')),
    table(['Item', 'Attempts', 'Reason', 'Consumer', 'Body', ''],
      page.entries.map((d) => el('tr', {'data-item': d.id},
        el('td', {}, d.id), numCell(d.attempts), el('td', {}, d.reason), el('td', {}, d.consumer),
        el('td', {}, el('pre', {class: 'payload'}, d.body)),
        el('td', {},
          el('button', {class: 'replay', onclick: act('/api/queue/dead/replay', d.id,
            (r) => 'replayed ' + r.replayed)}, 'Replay'),
          el('button', {class: 'purge', onclick: act('/api/queue/dead/purge', d.id,
            (r) => 'purged ' + r.purged)}, 'Purge')))),
      {id: 'queue-dead-table'}));
}

async function viewHealth(main) {
  const o = await api('/api/overview');
  main.replaceChildren(el('h2', {}, 'Health'), healthTable(o.health));
}

const views = {
  overview: viewOverview, schedule: viewSchedule, task: viewTask, dead: viewDead, events: viewEvents,
  streams: viewStreams, 'stream-dead': viewStreamDead, queues: viewQueues,
  'queue-dead': viewQueueDead, health: viewHealth,
};

// One render at a time; a navigation during a render renders again after it (never lost).
let rendering = false;
let renderAgain = false;
async function render() {
  if (rendering) {
    renderAgain = true;
    return;
  }
  rendering = true;
  const {view, args} = params();
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.getAttribute('href') === '#' + view);
  }
  const main = document.getElementById('main');
  try {
    await (views[view] || viewOverview)(main, args);
    document.getElementById('login').hidden = true;
    main.hidden = false;
    document.body.dataset.loaded = view;
  } catch (e) {
    if (e instanceof Unauthorized) {
      main.hidden = true;
      document.getElementById('login').hidden = false;
      document.getElementById('login-error').textContent = state.token ? 'That token was refused.' : '';
      document.body.dataset.loaded = 'login';
    } else {
      setStatus(e.message, true);
      document.body.dataset.loaded = 'error';
    }
  } finally {
    rendering = false;
    if (renderAgain) {
      renderAgain = false;
      render();
    }
  }
}

function start() {
  document.getElementById('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = document.getElementById('token').value;
    state.csrf = null;
    sessionStorage.setItem('corvo-token', state.token);
    render();
  });
  window.addEventListener('hashchange', render);
  render();
  // The overview refreshes itself (counts and charts) every 2 s.
  state.timer = setInterval(() => { if (params().view === 'overview') render(); }, 2000);
}

document.addEventListener('DOMContentLoaded', start);
)corvo";
  return text;
}

}  // namespace corvo::ops
