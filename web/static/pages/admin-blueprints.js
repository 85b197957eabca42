import { json, nameFields, objectPage, pretty } from './admin-crud.js';

export const title = 'Blueprints';

export async function render(ctx) {
  return objectPage(ctx, {
    path: '/blueprints', heading: 'Blueprints', noun: 'blueprint',
    intro: 'A blueprint is the flows and modules a new instance starts with.',
    columns: [
      { label: 'Name', cell: (b) => b.name },
      { label: 'Description', cell: (b) => b.description || '—' },
      { label: 'Flows', cell: (b) => `${(b.flows || []).length} nodes` },
      { label: 'Modules', cell: (b) => Object.keys(b.modules || {}).join(', ') || '—' },
    ],
    fields: (b) => [...nameFields(b),
      { name: 'flows', label: 'Flows (Node-RED JSON)', type: 'textarea', rows: 6, value: pretty(b?.flows || []) },
      { name: 'modules', label: 'Modules (JSON: name → version)', type: 'textarea', value: pretty(b?.modules || {}) }],
    body: (v) => ({ ...v, flows: json('flows', v.flows, []), modules: json('modules', v.modules, {}) }),
  });
}
