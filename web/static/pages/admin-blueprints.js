import * as api from '../api.js';
import { h } from '../ui.js';
import { json, nameFields, objectPage, pretty } from './admin-crud.js';

export const title = 'Blueprints';

const tick = 'teamType:';

export async function render(ctx) {
  const types = await api.list('/team-types');
  const typeNames = (ids) => (ids?.length ? ids.map((id) => types.find((t) => t.id === id)?.name || id).join(', ') : 'every team type');
  // teamTypes is a box per team type; none ticked offers the blueprint to every type.
  const teamTypes = (b) => h('fieldset', { class: 'field', 'data-field': 'teamTypeIds' },
    h('legend', {}, 'Offered to team types (none ticked: every type)'),
    types.map((t) => h('div', { class: 'check' },
      h('input', { type: 'checkbox', id: `bp-tt-${b?.id || 'new'}-${t.id}`, name: tick + t.id, checked: !!b?.teamTypeIds?.includes(t.id) }),
      h('label', { for: `bp-tt-${b?.id || 'new'}-${t.id}` }, t.name))),
    h('p', { class: 'field-error' }));
  return objectPage(ctx, {
    path: '/blueprints', heading: 'Blueprints', noun: 'blueprint',
    intro: 'A blueprint is the flows and modules a new instance starts with, offered to the team types you choose.',
    columns: [
      { label: 'Name', cell: (b) => b.name },
      { label: 'Description', cell: (b) => b.description || '—' },
      { label: 'Flows', cell: (b) => `${(b.flows || []).length} nodes` },
      { label: 'Modules', cell: (b) => Object.keys(b.modules || {}).join(', ') || '—' },
      { label: 'Offered to', cell: (b) => typeNames(b.teamTypeIds) },
    ],
    fields: (b) => [...nameFields(b),
      { name: 'flows', label: 'Flows (Node-RED JSON)', type: 'textarea', rows: 6, value: pretty(b?.flows || []) },
      { name: 'modules', label: 'Modules (JSON: name → version)', type: 'textarea', value: pretty(b?.modules || {}) },
      teamTypes(b)],
    body: (v) => {
      const out = { name: v.name, description: v.description, flows: json('flows', v.flows, []), modules: json('modules', v.modules, {}) };
      out.teamTypeIds = Object.keys(v).filter((k) => k.startsWith(tick) && v[k]).map((k) => k.slice(tick.length));
      return out;
    },
  });
}
