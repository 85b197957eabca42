import * as api from './api.js';
import { announce, form, section } from './ui.js';

// fleetSettingsSection edits the fleet settings of a device group or a device (PATCH path {settings}): the
// Node-RED version its agents install, the palette's .npmrc and catalogues, the local editor login. The .npmrc and
// the password are write-only: left empty, the ones set stay.
export function fleetSettingsSection(path, current, what) {
  const s = current || {};
  const npmrcSet = !!s.palette?.npmrcSet;
  return section('Fleet settings', form({
    label: `Fleet settings of the ${what}`, submit: 'Save fleet settings',
    fields: [
      { name: 'settings.nodeRedVersion', label: 'Node-RED version', value: s.nodeRedVersion, placeholder: 'the snapshot\'s', hint: 'A version or range, such as 4.1.15 or ~4.1.0, for application devices.' },
      { name: 'settings.palette.npmrc', label: '.npmrc for palette installs', type: 'textarea', rows: 3,
        placeholder: npmrcSet ? 'set: leave empty to keep it' : 'registry=https://…', hint: 'Written before npm installs, e.g. a private registry and its token; never shown again.' },
      npmrcSet ? { name: 'clearNpmrc', label: 'Remove the .npmrc', type: 'checkbox' } : null,
      { name: 'settings.palette.catalogues', label: 'Palette catalogues (one URL a line)', type: 'textarea', rows: 2, value: (s.palette?.catalogues || []).join('\n') },
      { name: 'settings.localAuth.enabled', label: 'Local editor login', type: 'checkbox', value: s.localAuth?.enabled },
      { name: 'settings.localAuth.user', label: 'Local editor user', value: s.localAuth?.user },
      { name: 'settings.localAuth.password', label: 'Local editor password', type: 'password', autocomplete: 'new-password',
        placeholder: s.localAuth?.passwordSet ? 'set: leave empty to keep it' : '' },
    ].filter(Boolean),
    onSubmit: async (v) => {
      const settings = {};
      if (v['settings.nodeRedVersion']) settings.nodeRedVersion = v['settings.nodeRedVersion'].trim();
      const catalogues = v['settings.palette.catalogues'].split('\n').map((l) => l.trim()).filter(Boolean);
      const npmrc = v['settings.palette.npmrc'];
      if (catalogues.length || npmrc || npmrcSet) {
        settings.palette = { catalogues };
        if (npmrc || v.clearNpmrc) settings.palette.npmrc = v.clearNpmrc ? '' : npmrc;
      }
      if (v['settings.localAuth.enabled'] || v['settings.localAuth.user']) {
        settings.localAuth = { enabled: v['settings.localAuth.enabled'], user: v['settings.localAuth.user'] };
        if (v['settings.localAuth.password']) settings.localAuth.password = v['settings.localAuth.password'];
      }
      await api.patch(path, { settings });
      announce(`Fleet settings of the ${what} saved; its devices are told.`);
    },
  }));
}
