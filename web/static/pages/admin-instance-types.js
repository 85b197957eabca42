import { activeColumn, activeField, json, nameFields, objectPage, pretty } from './admin-crud.js';

export const title = 'Instance types';

export async function render(ctx) {
  return objectPage(ctx, {
    path: '/instance-types', heading: 'Instance types', noun: 'instance type',
    columns: [
      { label: 'Name', cell: (t) => t.name },
      { label: 'Description', cell: (t) => t.description || '—' },
      { label: 'Persistent context', cell: (t) => (t.contextLimitKB ? `${t.contextLimitKB} KiB per instance` : 'none') },
      activeColumn,
    ],
    fields: (t) => [...nameFields(t), activeField(t),
      { name: 'contextLimitKB', label: 'Persistent context per instance (KiB, 0: none)', type: 'number', value: t?.contextLimitKB ?? 1024 },
      { name: 'properties', label: 'Properties (JSON)', type: 'textarea', value: pretty(t?.properties || {}) }],
    body: (v) => ({ ...v, properties: json('properties', v.properties, {}) }),
  });
}
