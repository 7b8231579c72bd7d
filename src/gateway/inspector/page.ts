/**
 * The inspector page: one HTML document, no build step. It reads server-sent events from
 * `/inspect/events` (with the login cookie, sent by the browser itself: no credential in a URL), lists the sessions
 * with the tool calls each waits to have approved, draws the selected session's machine with
 * its active states highlighted, its recent events, and the gateway's counters over the last minute.
 */
export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Baton inspector</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 0; color: #1d2433; background: #f6f7fb; }
  header { padding: 10px 16px; background: #1d2433; color: #fff; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  header .totals span { margin-right: 16px; }
  main { display: grid; grid-template-columns: minmax(420px, 1fr) 1.4fr; gap: 12px; padding: 12px; }
  section { background: #fff; border: 1px solid #dde1ee; border-radius: 6px; padding: 10px; overflow: auto; }
  h2 { font-size: 13px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #56607a; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f6; white-space: nowrap; }
  tr.session { cursor: pointer; }
  tr.session:hover { background: #f1f4ff; }
  tr.selected { background: #e3e9ff; }
  .state { font-weight: 600; }
  .state-busy { color: #b45309; } .state-idle { color: #047857; } .state-collecting { color: #1d4ed8; }
  #diagram svg { max-width: 100%; height: auto; }
  #diagram g.node.active path, #diagram g.node.active polygon, #diagram g.node.active ellipse { fill: #fde68a; stroke: #b45309; stroke-width: 2px; }
  #events { max-height: 220px; overflow: auto; font-family: ui-monospace, monospace; font-size: 12px; }
  .muted { color: #8a93a8; }
</style>
</head>
<body>
<header><h1>Baton inspector</h1><div class="totals" id="totals"></div><div class="muted" id="conn">connecting…</div></header>
<main>
  <div>
    <section><h2>Sessions</h2>
      <table><thead><tr><th>id</th><th>kind</th><th>state</th><th>backlog</th><th>turns</th><th>node</th><th>clients</th><th>last error</th><th>waiting for approval</th><th>next schedule</th></tr></thead>
      <tbody id="sessions"></tbody></table>
    </section>
    <section style="margin-top:12px"><h2>Throughput (per second, last 60 s)</h2>
      <canvas id="chart" width="520" height="120"></canvas>
      <div class="muted"><span style="color:#2563eb">■</span> turns/s <span style="color:#059669">■</span> inputs/s <span style="color:#dc2626">■</span> errors/s</div>
    </section>
  </div>
  <div>
    <section><h2 id="selected-title">Select a session</h2><div id="diagram" data-active=""></div></section>
    <section style="margin-top:12px"><h2>Recent events</h2><div id="events"></div></section>
  </div>
</main>
<script>
const sessions = new Map();
const recent = new Map();
const samples = [];
let selected = null;
let drawnKind = null;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function renderSessions() {
  const rows = [...sessions.values()].sort((a, b) => a.id.localeCompare(b.id)).map((s) =>
    '<tr class="session' + (s.id === selected ? ' selected' : '') + '" data-id="' + esc(s.id) + '">' +
    '<td>' + esc(s.id) + '</td><td>' + esc(s.kind) + '</td><td class="state state-' + esc(s.state) + '" data-state="' + esc(s.state) + '">' + esc(s.state) + '</td>' +
    '<td>' + s.backlog + '</td><td>' + s.turns + '</td><td>' + (s.node ? esc(s.node) : '<span class="muted">here</span>') + '</td><td>' + s.clients + '</td>' +
    '<td>' + (s.lastError ? esc(s.lastError.code) : '<span class="muted">—</span>') + '</td>' +
    '<td>' + (s.approvals.map(approval).join('') || '<span class="muted">—</span>') + '</td>' +
    '<td class="next-due">' + (s.nextDue === null ? '<span class="muted">—</span>' : esc(new Date(Number(s.nextDue)).toISOString())) + '</td></tr>');
  $('sessions').innerHTML = rows.join('');
}
// A pending tool call: its id and tool (agent-chosen text: escaped), and when it is denied unless decided.
function approval(a) {
  const until = a.expiresAt === null ? '?' : new Date(Number(a.expiresAt)).toLocaleTimeString();
  return '<div class="approval" data-call="' + esc(a.id) + '">' + esc(a.id) + ' <b>' + esc(a.tool === null ? '?' : a.tool) + '</b> <span class="muted">until ' + esc(until) + '</span></div>';
}
$('sessions').addEventListener('click', (e) => {
  const row = e.target.closest('tr.session');
  if (row) select(row.dataset.id);
});

async function select(id) {
  selected = id;
  renderSessions();
  const s = sessions.get(id);
  $('selected-title').textContent = id + ' (' + (s ? s.kind : '?') + ')';
  if (s && s.kind !== drawnKind) {
    const res = await fetch('/inspect/machine/' + encodeURIComponent(s.kind) + '.svg');
    $('diagram').innerHTML = res.ok ? await res.text() : '<p class="muted">no diagram for this kind</p>';
    drawnKind = s.kind;
  }
  highlight();
  renderEvents();
}

function highlight() {
  const s = sessions.get(selected);
  const active = new Set(s ? s.active : []);
  for (const node of document.querySelectorAll('#diagram g.node')) {
    const title = node.querySelector('title');
    node.classList.toggle('active', !!title && active.has(title.textContent));
  }
  $('diagram').dataset.active = s ? s.active.join(' ') : '';
}

function renderEvents() {
  const list = recent.get(selected) || [];
  $('events').innerHTML = list.slice(-60).reverse().map((e) =>
    '<div>#' + e.seq + ' <b>' + esc(e.type) + '</b> <span class="muted">' + new Date(e.at).toLocaleTimeString() + '</span></div>').join('');
}

function drawChart() {
  const c = $('chart'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i], dt = Math.max(1, b.at - a.at) / 1000;
    rates.push({ turns: (b.turns - a.turns) / dt, inputs: (b.inputs - a.inputs) / dt, errors: (b.errors - a.errors) / dt });
  }
  const max = Math.max(1, ...rates.flatMap((r) => [r.turns, r.inputs, r.errors]));
  const series = [['turns', '#2563eb'], ['inputs', '#059669'], ['errors', '#dc2626']];
  for (const [key, color] of series) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    rates.forEach((r, i) => {
      const x = (i / 59) * (c.width - 4) + 2, y = c.height - 4 - (r[key] / max) * (c.height - 10);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
  g.fillStyle = '#8a93a8'; g.fillText('max ' + max.toFixed(1) + '/s', 4, 10);
}

const source = new EventSource('/inspect/events');
source.onopen = () => { $('conn').textContent = 'live'; };
source.onerror = () => { $('conn').textContent = 'reconnecting…'; };
source.addEventListener('sessions', (e) => {
  for (const s of JSON.parse(e.data)) s.removed ? sessions.delete(s.id) : sessions.set(s.id, s);
  renderSessions();
  if (selected) highlight();
});
source.addEventListener('events', (e) => {
  for (const ev of JSON.parse(e.data)) {
    const list = recent.get(ev.sessionId) || [];
    list.push(ev);
    if (list.length > 200) list.splice(0, list.length - 200);
    recent.set(ev.sessionId, list);
  }
  if (selected) renderEvents();
});
source.addEventListener('counters', (e) => {
  const c = JSON.parse(e.data);
  const last = samples[samples.length - 1];
  if (!last || c.at - last.at >= 1000) { samples.push(c); if (samples.length > 61) samples.shift(); drawChart(); }
  $('totals').innerHTML = '<span>turns ' + c.turns + '</span><span>inputs ' + c.inputs + '</span><span>errors ' + c.errors + '</span><span>sessions ' + sessions.size + '</span>';
});
</script>
</body>
</html>
`;

/**
 * The inspector's login form (C18): the credential goes in a POST body, and comes back as an
 * HttpOnly cookie holding an opaque id — never in a URL, which access logs and proxies record.
 */
export function loginPage(failed: boolean): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Baton inspector: log in</title>
<style>body { font: 14px system-ui, sans-serif; margin: 15vh auto; max-width: 360px; color: #1d2433; } input { width: 100%; padding: 6px; margin: 8px 0; box-sizing: border-box; } .failed { color: #b91c1c; }</style>
</head>
<body>
<h1>Baton inspector</h1>
<p>The inspector shows every session: it needs an admin credential (the static token, or a JWT with the <code>admin</code> scope).</p>
${failed ? '<p class="failed">That credential was refused, or it is not an admin\'s.</p>' : ''}
<form method="post" action="/inspect/login">
<label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button>
</form>
</body>
</html>`;
}
