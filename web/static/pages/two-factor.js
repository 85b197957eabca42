import * as api from '../api.js';
import { app } from '../app.js';
import { announce, copyBlock, form, h, replace, section } from '../ui.js';

export const title = 'Two-factor sign-in';

// The caller's two-factor sign-in: set up an authenticator app (scan the QR code, confirm with a first code, keep
// the recovery codes shown once), renew the recovery codes, or turn it off. Changes to an account that has it on
// ask for a current code, a recovery code or the password. While the platform requires two-factor sign-in, a user
// without it is held here (the API answers 403 two_factor_required elsewhere) until it is on.
export async function render(ctx) {
  const required = app.state.user?.twoFactorRequired;
  const body = h('div', { 'aria-live': 'polite' });
  const draw = async () => {
    const state = await api.get('/user/two-factor');
    if (required && state.enabled) { // the recovery codes were kept: the hold is over
      await app.loadSession();
      ctx.navigate('/', { replace: true });
      return;
    }
    replace(body, state.enabled ? enabledView(state, draw) : setUpView(draw));
  };
  await draw();
  return [h('h1', {}, 'Two-factor sign-in'),
    required ? h('p', { role: 'note', class: 'hint', id: 'two-factor-required' }, 'This platform requires two-factor sign-in: ' +
      'set up an authenticator app before going on. Until then you can reach nothing else.') : null,
    h('p', { class: 'muted' }, 'With two-factor sign-in on, signing in with your password also asks for a code from an authenticator app. ' +
      'Personal access tokens are not affected.'),
    body];
}

function setUpView(redraw) {
  const holder = h('div', {});
  const start = form({
    label: 'Set up two-factor sign-in',
    submit: 'Set up an authenticator app',
    onSubmit: async () => {
      const enrolment = await api.post('/user/two-factor');
      replace(holder, confirmStep(enrolment, redraw));
      holder.querySelector('input[name="code"]').focus();
    },
  });
  replace(holder, start);
  return section('Set up', h('p', {}, 'Two-factor sign-in is off.'), holder);
}

function confirmStep(enrolment, redraw) {
  const shown = h('div', {});
  const confirm = form({
    label: 'Confirm the authenticator',
    submit: 'Turn on',
    fields: [{ name: 'code', label: 'Code from the app', autocomplete: 'one-time-code', required: true, hint: 'The 6 digits the app shows now.' }],
    onSubmit: async (v) => {
      const res = await api.post('/user/two-factor/confirm', { code: v.code.trim() });
      replace(shown, recoveryCodes(res.recoveryCodes, redraw));
      announce('Two-factor sign-in is on. Keep your recovery codes.');
    },
  });
  return h('div', {},
    h('p', {}, 'Scan this code with an authenticator app, or type the key into it.'),
    h('img', { src: enrolment.qrCode, alt: 'QR code of the authenticator key', class: 'qr' }),
    copyBlock('Key', enrolment.secret),
    confirm, shown);
}

function recoveryCodes(codes, redraw) {
  return section('Recovery codes',
    h('p', {}, 'Each code signs you in once if you lose the app. They are shown only now: keep them somewhere safe.'),
    copyBlock('Recovery codes', codes.join('\n')),
    h('button', { type: 'button', onClick: redraw }, 'I have kept them'));
}

// proofFields ask for one of the three proofs the API takes.
const proofFields = [
  { name: 'kind', label: 'Prove it with', type: 'select', value: 'code',
    options: [{ value: 'code', label: 'A code from the app' }, { value: 'recoveryCode', label: 'A recovery code' }, { value: 'password', label: 'My password' }] },
  { name: 'proof', label: 'Code or password', type: 'password', required: true, autocomplete: 'off' },
];
const proofOf = (v) => ({ [v.kind]: v.proof.trim() });

function enabledView(state, redraw) {
  const renewed = h('div', {});
  return [
    section('On', h('p', {}, `Two-factor sign-in is on. Recovery codes left: ${state.recoveryCodesLeft}.`)),
    section('New recovery codes', form({
      label: 'New recovery codes', submit: 'Replace my recovery codes', fields: proofFields,
      onSubmit: async (v, el) => {
        const res = await api.post('/user/two-factor/recovery-codes', proofOf(v));
        el.reset();
        replace(renewed, recoveryCodes(res.recoveryCodes, redraw));
      },
    }), renewed),
    section('Turn off', form({
      label: 'Turn off two-factor sign-in', submit: 'Turn off', fields: proofFields,
      onSubmit: async (v) => {
        await api.post('/user/two-factor/disable', proofOf(v));
        announce('Two-factor sign-in is off.');
        await redraw();
      },
    })),
  ];
}
