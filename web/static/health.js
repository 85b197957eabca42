// The instance page's health chart: CPU and memory over the last hour as two SVG sparklines drawn with the DOM
// (no inline styles or scripts: the page's CSP refuses them; the look is in app.css), each with a text summary
// for screen readers and anyone who wants the figures.

import * as api from './api.js';
import { action, h, replace, section } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 240;
const H = 40;

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// sparkline draws values (oldest first) as a line scaled from 0 to their maximum (at least floor).
export function sparkline(values, { label, floor = 1 }) {
  const top = Math.max(floor, ...values);
  const y = (v) => (H - (v / top) * (H - 2) - 1).toFixed(1);
  // One sample is drawn as a flat line across the box.
  const drawn = values.length === 1 ? [values[0], values[0]] : values;
  const step = W / Math.max(1, drawn.length - 1);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'spark', role: 'img', 'aria-label': label });
  chart.append(svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'spark-base' }));
  if (drawn.length) chart.append(svg('polyline', { points: drawn.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`).join(' ') }));
  return chart;
}

const mib = (b) => `${(b / (1 << 20)).toFixed(0)} MiB`;
const pct = (p) => `${p.toFixed(1)} %`;

function series(title, values, fmt, floor) {
  const last = values.length ? fmt(values[values.length - 1]) : '—';
  const peak = values.length ? fmt(Math.max(...values)) : '—';
  const summary = `${title}: now ${last}, peak ${peak} over the last hour`;
  return h('figure', { class: 'health-series' },
    h('figcaption', {}, h('strong', {}, title), ' ', h('span', { class: 'health-now' }, last), h('span', { class: 'muted' }, ` (peak ${peak})`)),
    sparkline(values, { label: summary, floor }));
}

// healthSection shows the chart, redrawn on Refresh (samples come every 15 s; nothing polls).
export function healthSection(ctx, instanceId) {
  const body = h('div', { class: 'health', 'aria-live': 'polite' });
  const draw = async () => {
    const data = await api.get(`/instances/${instanceId}/health`);
    if (!ctx.current()) return;
    const samples = data.samples || [];
    replace(body, samples.length
      ? [series('CPU', samples.map((s) => s.cpuPercent), pct, 5), series('Memory', samples.map((s) => s.memoryBytes), mib, 64 << 20),
        h('p', { class: 'muted' }, `${samples.length} samples, every 15 s, from ${new Date(samples[0].at).toLocaleTimeString()}.`)]
      : h('p', { class: 'muted empty' }, 'No samples yet: the instance is measured every 15 s while it runs.'));
  };
  draw().catch((err) => replace(body, h('p', { class: 'field-error' }, String(err.message || err))));
  return section('Health (last hour)', body, h('div', { class: 'actions' }, action('Refresh', draw)));
}
