import * as api from '../api.js';
import { h, messageForm, section } from '../ui.js';

export const title = 'Create an account';

// Sign-up, when a platform admin has turned it on: the account works once the link mailed to its address is
// opened with the password chosen here. The answer is the same whether or not the address has an account.
export async function render() {
  const signUp = messageForm({
    status: { id: 'signup-status' },
    label: 'Create an account',
    submit: 'Create account',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'email' },
      { name: 'name', label: 'Your name', required: true, autocomplete: 'name' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password',
        hint: 'At least 12 characters, and not one of the most common passwords.' },
    ],
    send: (v) => api.post('/auth/signup', { email: v.email, name: v.name, password: v.password }),
  });
  const resend = messageForm({
    label: 'Send the confirmation link again',
    submit: 'Send link again',
    fields: [{ name: 'email', label: 'Address you signed up with', type: 'email', required: true, autocomplete: 'email' }],
    send: (v) => api.post('/auth/signup/resend', { email: v.email }),
  });
  return h('div', { class: 'narrow' }, h('h1', {}, 'Create an account'), ...signUp,
    h('details', { class: 'forgot' }, h('summary', {}, 'No confirmation mail?'), section('Send the link again', ...resend)),
    h('p', {}, 'Have an account? ', h('a', { href: '/signin' }, 'Sign in')));
}
