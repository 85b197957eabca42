import * as api from '../api.js';
import { badge } from '../ui.js';
import { activeField, objectPage } from './admin-crud.js';

export const title = 'Stacks';

export async function render(ctx) {
  const types = await api.list('/instance-types');
  const typeName = (id) => types.find((t) => t.id === id)?.name || '—';
  return objectPage(ctx, {
    path: '/stacks', heading: 'Stacks', noun: 'stack',
    intro: 'A stack is the Node-RED and Node.js version an instance runs, with its memory and CPU.',
    columns: [
      { label: 'Name', cell: (s) => s.name },
      { label: 'Node-RED', cell: (s) => s.nodeRedVersion },
      { label: 'Node.js', cell: (s) => s.nodeVersion || 'default' },
      { label: 'Memory', cell: (s) => `${s.memoryMB} MB` },
      { label: 'CPU', cell: (s) => `${s.cpuPercent} %` },
      { label: 'Instance type', cell: (s) => typeName(s.instanceTypeId) },
      { label: 'State', cell: (s) => badge(s.active ? 'active' : 'inactive') },
    ],
    fields: (s) => [
      { name: 'name', label: 'Name', value: s?.name, required: true },
      { name: 'nodeRedVersion', label: 'Node-RED version', value: s?.nodeRedVersion, required: true, placeholder: '4.1.15' },
      { name: 'nodeVersion', label: 'Node.js version (optional)', value: s?.nodeVersion, placeholder: '22' },
      { name: 'memoryMB', label: 'Memory (MB)', type: 'number', value: s?.memoryMB ?? 256, required: true },
      { name: 'cpuPercent', label: 'CPU (% of a core)', type: 'number', value: s?.cpuPercent ?? 50, required: true },
      { name: 'instanceTypeId', label: 'Instance type', type: 'select', value: s?.instanceTypeId || '',
        options: [{ value: '', label: 'None' }, ...types.map((t) => ({ value: t.id, label: t.name }))] },
      activeField(s),
    ],
    body: (v) => ({ ...v, instanceTypeId: v.instanceTypeId || undefined, nodeVersion: v.nodeVersion || undefined }),
  });
}
