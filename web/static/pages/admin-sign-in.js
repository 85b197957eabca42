import * as api from '../api.js';
import { action, announce, form, h, replace, section, table } from '../ui.js';

export const title = 'Sign-in';

const path = '/sso-configurations';

// Platform admins send the users of an e-mail domain to their organisation's OpenID provider (single sign-on),
// and turn off the two-factor sign-in of a user who lost their authenticator and recovery codes.
export async function render() {
  const listEl = h('div', {});
  const editor = h('div', { 'aria-live': 'polite' });
  const refresh = async () => draw(await api.list(path));
  const draw = (items) => replace(listEl, table({
    caption: 'Single sign-on by e-mail domain',
    columns: [
      { label: 'Domain', cell: (c) => c.domain },
      { label: 'Issuer', cell: (c) => c.issuerUrl },
      { label: 'Client ID', cell: (c) => c.clientId },
      { label: 'Redirect URI', cell: (c) => h('code', {}, c.redirectUri) },
      { label: 'Actions', cell: (c) => h('div', { class: 'actions' },
        h('button', { type: 'button', onClick: () => edit(c) }, 'Edit'),
        action('Delete', async () => {
          await api.del(`${path}/${c.id}`);
          announce(`Single sign-on for ${c.domain} removed.`);
          await refresh();
        }, { danger: true, confirm: { title: `Remove single sign-on for ${c.domain}?`, text: 'Its users will sign in with passwords again.', confirm: 'Remove' } })) },
    ],
    rows: items,
    empty: 'No domain signs in through single sign-on.',
    rowAttrs: (c) => ({ 'data-domain': c.domain }),
  }));
  const edit = (c) => {
    replace(editor, section(`Edit ${c.domain}`, form({
      label: `Edit single sign-on for ${c.domain}`, submit: 'Save changes', fields: fields(c),
      onSubmit: async (v) => {
        const body = { domain: v.domain, issuerUrl: v.issuerUrl, clientId: v.clientId };
        if (v.clientSecret) body.clientSecret = v.clientSecret;
        await api.patch(`${path}/${c.id}`, body);
        announce(`Single sign-on for ${v.domain} saved.`);
        replace(editor);
        await refresh();
      },
    }), h('button', { type: 'button', onClick: () => replace(editor) }, 'Close')));
    editor.querySelector('input')?.focus();
  };
  await refresh();
  return [
    h('h1', {}, 'Sign-in'),
    h('p', { class: 'muted' }, 'Users of a domain with single sign-on sign in through its OpenID provider; their accounts are made at their ' +
      'first sign-in. Platform admins may still sign in with a password. Register the redirect URI at the provider.'),
    listEl,
    editor,
    section('New single sign-on', form({
      label: 'Add single sign-on', submit: 'Add', fields: fields(null),
      onSubmit: async (v, el) => {
        const c = await api.post(path, v);
        el.reset();
        announce(`Single sign-on for ${c.domain} added. Register ${c.redirectUri} at the provider.`);
        await refresh();
      },
    })),
    resetTwoFactor(),
  ];
}

function fields(c) {
  return [
    { name: 'domain', label: 'E-mail domain', value: c?.domain, required: true, placeholder: 'example.com' },
    { name: 'issuerUrl', label: 'Issuer URL', type: 'url', value: c?.issuerUrl, required: true, placeholder: 'https://login.example.com',
      hint: 'Flowyard reads the provider\'s discovery document from it when you save.' },
    { name: 'clientId', label: 'Client ID', value: c?.clientId, required: true },
    { name: 'clientSecret', label: 'Client secret', type: 'password', required: !c, autocomplete: 'new-password',
      hint: c ? 'Leave empty to keep the stored secret.' : 'Stored encrypted; never shown again.' },
  ];
}

function resetTwoFactor() {
  const done = h('p', { role: 'status' });
  return section('Reset two-factor sign-in', form({
    label: 'Reset two-factor sign-in', submit: 'Turn off two-factor sign-in',
    fields: [{ name: 'email', label: 'Address of the user', type: 'email', required: true }],
    onSubmit: async (v, el) => {
      const email = v.email.trim().toLowerCase();
      const user = (await api.list('/users')).find((u) => u.email === email);
      if (!user) throw new Error(`No user has the address ${email}.`);
      await api.del(`/users/${user.id}/two-factor`);
      el.reset();
      done.textContent = `Two-factor sign-in is off for ${email}; they sign in with their password alone until they set it up again.`;
    },
  }), done);
}
