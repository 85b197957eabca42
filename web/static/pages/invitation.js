import * as api from '../api.js';
import { app } from '../app.js';
import { action, announce, form, h, section } from '../ui.js';

export const title = 'Invitation';

// signedInUser asks who is signed in without the app's 401 handling (which would send a newcomer to sign in).
async function signedInUser() {
  const res = await fetch('/api/v1/user', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  return res.ok ? res.json() : null;
}

// An invitation link from an e-mail: accept it signed in as the invited address, or create the account by
// accepting when the address has none; or decline it.
export async function render(ctx) {
  const token = encodeURIComponent(ctx.params.token);
  const user = await signedInUser();
  const joined = async (res) => {
    await app.loadSession();
    announce(`You joined the team as ${res.role}.`);
    const team = app.state.teams.find((t) => t.id === res.teamId);
    ctx.navigate(team ? `/teams/${team.slug}` : '/', { replace: true });
  };
  const decline = action('Decline invitation', async () => {
    await api.post(`/invitations/${token}/decline`);
    announce('You declined the invitation.');
    ctx.navigate(user ? '/' : '/signin', { replace: true });
  });
  if (user) {
    return h('div', { class: 'narrow' }, h('h1', {}, 'Join a team'),
      h('p', {}, `You are signed in as ${user.email}. The invitation must have been sent to that address.`),
      h('p', {}, action('Accept invitation', async () => joined(await api.post(`/invitations/${token}/accept`)), { primary: true }), ' ', decline));
  }
  const next = encodeURIComponent(location.pathname);
  return h('div', { class: 'narrow' }, h('h1', {}, 'Join a team'),
    section('New to Flowyard?', form({
      label: 'Create your account',
      submit: 'Create account and join',
      fields: [
        { name: 'name', label: 'Your name', required: true, autocomplete: 'name' },
        { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password',
          hint: 'At least 12 characters, and not one of the most common passwords.' },
      ],
      onSubmit: async (v) => joined(await api.post(`/invitations/${token}/accept`, { name: v.name, password: v.password })),
    })),
    section('Already have an account?', h('p', {}, h('a', { href: `/signin?next=${next}` }, 'Sign in with the invited address'), ', then accept.')),
    section('Not interested?', decline));
}
