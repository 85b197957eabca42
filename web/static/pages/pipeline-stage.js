// The form that appends a stage to a pipeline (a section of the pipeline page).
import * as api from '../api.js';
import { announce, form } from '../ui.js';

export const stageActions = [
  { value: 'create_snapshot', label: 'Create a snapshot of the instance' },
  { value: 'use_latest_snapshot', label: 'Use the latest snapshot' },
  { value: 'use_active_snapshot', label: 'Use what the device runs' },
  { value: 'prompt', label: 'Ask for the snapshot when promoting' },
];

// onStageField: the API checks the whole pipeline and names fields stages[i].name; the form's fields are name.
function onStageField(err) {
  for (const v of err.validations || []) v.field = v.field.replace(/^stages\[\d+\]\./, '');
  throw err;
}

export function addStageForm(ctx, id, targets, refresh) {
  const kindLabel = { instance: 'Instance', device: 'Device', device_group: 'Device group' };
  return form({
    label: 'Add a stage', submit: 'Add stage',
    fields: [
      { name: 'name', label: 'Stage name', required: true },
      { name: 'target', label: 'Target', type: 'select', options: targets.map((t) => ({ value: `${t.kind}:${t.id}`, label: `${kindLabel[t.kind]} ${t.name}` })) },
      { name: 'action', label: 'Snapshot to promote from this stage', type: 'select', options: stageActions },
      { name: 'requiresApproval', label: 'Promotions into this stage need approval', type: 'checkbox' },
      { name: 'approverRole', label: 'Who approves', type: 'select', value: 'owner', options: [{ value: 'owner', label: 'Owners' }, { value: 'member', label: 'Members' }] },
      { name: 'protected', label: 'Protected: only owners promote into it', type: 'checkbox' },
      { name: 'deployToDevices', label: 'Deploy to the devices of the instance', type: 'checkbox' },
    ],
    onSubmit: async (v, el) => {
      const [kind, tid] = (v.target || ':').split(':');
      const target = kind === 'instance' ? { instanceId: tid } : kind === 'device' ? { deviceId: tid } : kind ? { deviceGroupId: tid } : undefined;
      await api.post(`/pipelines/${id}/stages`, { name: v.name, target, action: v.action, requiresApproval: v.requiresApproval,
        approverRole: v.approverRole, protected: v.protected, deployToDevices: v.deployToDevices }).catch(onStageField);
      el.reset();
      announce(`Stage ${v.name} added.`);
      await refresh();
    },
  });
}
