// Single sign-on and two-factor sign-in in a real browser, on `flowyard dev` with a real OpenID provider that
// platform/dashboard_browser_test.go runs beside it (FLOWYARD_SSO_* name its domain and users; an admin configured
// the domain). The sign-in page sends an address of the domain to the provider and back, signed in; a refusal
// of the callback lands on the sign-in page with its reason; the admin page lists the configuration and says why
// an unreachable issuer is refused; a user sets up two-factor sign-in with a code computed here from the key the
// page shows, keeps the recovery codes, and is asked for a code at the next sign-in.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { env, launch, screenshot, signIn, unlabelled } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const sso = { domain: env('FLOWYARD_SSO_DOMAIN'), email: env('FLOWYARD_SSO_EMAIL'), name: env('FLOWYARD_SSO_NAME'),
  unverified: env('FLOWYARD_SSO_UNVERIFIED_EMAIL') };
const suffix = Date.now().toString(36).slice(-5);
const tfa = { email: `tfa-${suffix}@example.com`, password: 'two-factor-password' };

// totp is RFC 6238's code of a base32 key at a 30-second step (SHA-1, 6 digits), as an authenticator app makes it.
function totp(key, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of key.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const secret = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', secret).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1e6).padStart(6, '0');
}
const stepNow = () => Math.floor(Date.now() / 30000);

describe('single sign-on and two-factor sign-in', () => {
  let browser;
  let page;
  const pageErrors = [];

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, admin.email, admin.password);
    const res = await page.request.post('/api/v1/users', { data: { email: tfa.email, name: 'Two Factor', password: tfa.password } });
    assert.equal(res.status(), 201, await res.text());
  });

  after(async () => {
    await browser?.close();
    assert.deepEqual(pageErrors, [], 'no script errors');
  });

  it('signs an address of the domain in through its provider', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      p.on('pageerror', (e) => pageErrors.push(e.message));
      await p.goto('/signin');
      await p.getByLabel('Email').fill(sso.email);
      await p.getByLabel('Email').press('Tab');
      const go = p.getByRole('button', { name: 'Continue with single sign-on' });
      await go.waitFor();
      assert.equal(await p.getByLabel('Password').isVisible(), false, 'no password for a single sign-on address');
      await screenshot(p, 'signin-sso', { fullPage: false });
      await go.click();
      await p.getByRole('heading', { name: 'Test provider' }).waitFor();
      await p.getByRole('button', { name: 'Sign in at the provider' }).click();
      await p.getByRole('button', { name: 'Sign out' }).waitFor();
      assert.equal(new URL(p.url()).pathname, '/');
      await p.locator('.who', { hasText: sso.name }).waitFor();
    } finally {
      await b.close();
    }
  });

  it('brings a refused sign-in back to the sign-in page with its reason', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await p.goto('/signin');
      await p.getByLabel('Email').fill(sso.unverified);
      await p.getByLabel('Email').press('Tab');
      await p.getByRole('button', { name: 'Continue with single sign-on' }).click();
      await p.getByRole('button', { name: 'Sign in at the provider' }).click();
      await p.getByRole('alert').filter({ hasText: 'has not verified your e-mail address' }).waitFor();
      assert.match(p.url(), /\/signin\?sso_error=sso_email_unverified$/);
      await p.getByLabel('Email').fill(sso.email);
      await p.getByLabel('Email').press('Tab');
      await p.getByRole('button', { name: 'Sign in with a password instead (platform admins)' }).click();
      await p.getByLabel('Password').waitFor(); // break-glass: the password is back for a platform admin
      await p.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    } finally {
      await b.close();
    }
  });

  it('lists the domain for admins and says why an issuer is refused', async () => {
    await page.goto('/admin/sign-in');
    await page.getByRole('heading', { level: 1, name: 'Sign-in' }).waitFor();
    await page.locator(`tr[data-domain="${sso.domain}"]`).waitFor();
    const add = page.getByRole('form', { name: 'Add single sign-on' });
    await add.getByLabel('E-mail domain').fill(`nowhere-${suffix}.example`);
    await add.getByLabel('Issuer URL').fill('http://127.0.0.1:1');
    await add.getByLabel('Client ID').fill('flowyard');
    await add.getByLabel('Client secret').fill('a secret');
    await add.getByRole('button', { name: 'Add' }).click();
    await add.locator('.form-error', { hasText: 'discovery document' }).waitFor();
    await add.locator('.field-error', { hasText: 'did not answer' }).waitFor();
    assert.deepEqual(await unlabelled(page), []);
    await screenshot(page, 'admin-sign-in');
  });

  it('sets up two-factor sign-in and asks for a code at the next sign-in', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      p.on('pageerror', (e) => pageErrors.push(e.message));
      await signIn(p, tfa.email, tfa.password);
      await p.getByRole('link', { name: 'Two-factor sign-in' }).click();
      await p.getByRole('button', { name: 'Set up an authenticator app' }).click();
      await p.getByRole('img', { name: 'QR code of the authenticator key' }).waitFor();
      const key = (await p.locator('.copy', { hasText: 'Key' }).locator('pre').textContent()).trim();
      const step = stepNow();
      const confirm = p.getByRole('form', { name: 'Confirm the authenticator' });
      await confirm.getByLabel('Code from the app').fill('000000');
      await confirm.getByRole('button', { name: 'Turn on' }).click();
      await confirm.locator('.form-error', { hasText: 'not right' }).waitFor();
      await confirm.getByLabel('Code from the app').fill(totp(key, step));
      await confirm.getByRole('button', { name: 'Turn on' }).click();
      const codes = (await p.locator('.copy', { hasText: 'Recovery codes' }).locator('pre').textContent()).trim().split('\n');
      assert.equal(codes.length, 10);
      assert.deepEqual(await unlabelled(p), []);
      await p.getByRole('button', { name: 'I have kept them' }).click();
      await p.getByText('Two-factor sign-in is on. Recovery codes left: 10.').waitFor();

      await p.getByRole('button', { name: 'Sign out' }).click();
      await p.getByLabel('Email').fill(tfa.email);
      await p.getByLabel('Password').fill(tfa.password);
      await p.getByRole('button', { name: 'Sign in' }).click();
      const code = p.getByRole('form', { name: 'Two-factor code' });
      await code.getByLabel('Authentication code').fill(totp(key, step)); // used already: refused
      await code.getByRole('button', { name: 'Verify' }).click();
      await code.locator('.form-error', { hasText: 'used already' }).waitFor();
      await code.getByLabel('Authentication code').fill(totp(key, Math.max(step, stepNow()) + 1));
      await code.getByRole('button', { name: 'Verify' }).click();
      await p.getByRole('button', { name: 'Sign out' }).waitFor();
    } finally {
      await b.close();
    }
  });
});
