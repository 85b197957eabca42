import { h } from '../ui.js';
import { activeColumn, activeField, json, nameFields, objectPage, pretty } from './admin-crud.js';

export const title = 'Templates';

// A template's policy: false locks a setting to the template's value; true or missing lets instances change it.
const lockedOf = (t) => Object.entries(t?.policy || {}).filter(([, may]) => may === false).map(([k]) => k);

export async function render(ctx) {
  return objectPage(ctx, {
    path: '/templates', heading: 'Templates', noun: 'template',
    intro: 'A template gives new instances their settings and environment; locked ones cannot be changed per instance.',
    columns: [
      { label: 'Name', cell: (t) => t.name },
      { label: 'Settings', cell: (t) => h('ul', { class: 'plain' }, Object.entries(t.settings || {}).map(([k, v]) =>
        h('li', {}, h('code', {}, k), ` = ${JSON.stringify(v)}`, lockedOf(t).includes(k) ? ' 🔒 locked' : ''))) },
      { label: 'Environment', cell: (t) => (t.env || []).map((e) => `${e.name}${e.locked ? ' 🔒' : ''}`).join(', ') || '—' },
      activeColumn,
    ],
    fields: (t) => [...nameFields(t), activeField(t),
      { name: 'settings', label: 'Settings (JSON object)', type: 'textarea', rows: 6, value: pretty(t?.settings || {}) },
      { name: 'policy', label: 'Locked settings (names, comma-separated)', value: lockedOf(t).join(', '),
        hint: 'Instances cannot change these; they keep the template\'s value.' },
      { name: 'env', label: 'Environment (JSON list of {name, value, locked})', type: 'textarea', value: pretty(t?.env || []) }],
    body: (v) => ({ ...v, settings: json('settings', v.settings, {}), env: json('env', v.env, []),
      policy: Object.fromEntries(v.policy.split(',').map((s) => s.trim()).filter(Boolean).map((k) => [k, false])) }),
  });
}
