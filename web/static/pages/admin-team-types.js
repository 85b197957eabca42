import { field, h } from '../ui.js';
import { activeColumn, activeField, json, nameFields, objectPage, pretty } from './admin-crud.js';

export const title = 'Team types';

const limit = (n) => (n ? String(n) : 'unlimited');

export async function render(ctx) {
  return objectPage(ctx, {
    path: '/team-types', heading: 'Team types', noun: 'team type',
    intro: 'A team type sets its teams\' limits (0 is unlimited), features, billing and trial.',
    columns: [
      { label: 'Name', cell: (t) => t.name },
      { label: 'Members', cell: (t) => limit(t.properties.limits?.members) },
      { label: 'Instances', cell: (t) => limit(t.properties.limits?.instances) },
      { label: 'Devices', cell: (t) => limit(t.properties.limits?.devices) },
      activeColumn,
    ],
    fields: (t) => {
      const { limits = {}, ...rest } = t?.properties || {};
      return [...nameFields(t), activeField(t),
        // The API names the three limits as one field, properties.limits: its errors go above the group.
        h('fieldset', { 'data-field': 'properties.limits' }, h('legend', {}, 'Limits (0 is unlimited)'), h('p', { class: 'field-error' }),
          field({ name: 'members', label: 'Members', type: 'number', value: limits.members ?? 0 }),
          field({ name: 'instances', label: 'Instances', type: 'number', value: limits.instances ?? 0 }),
          field({ name: 'devices', label: 'Devices', type: 'number', value: limits.devices ?? 0 })),
        { name: 'properties', label: 'Features, billing and trial (JSON)', type: 'textarea', value: pretty(rest) }];
    },
    body: (v, t) => {
      const { members = 0, instances = 0, devices = 0, properties, ...rest } = v;
      const other = json('properties', properties, {});
      return { ...rest, properties: { ...other, limits: { ...(t?.properties.limits || {}), members, instances, devices } } };
    },
  });
}
