// Invitations and passwords in a real browser, on `flowyard dev` without a mail server: an owner invites an
// address from the members page and gets the link to pass on; a newcomer opens it, creates an account by
// accepting and lands in the team; they change their password, sign in with the new one, and the sign-in page
// answers a reset request alike for every address. Then sign-up and user administration: an admin turns sign-up
// on; someone creates an account from the sign-in page, cannot sign in before confirming it, confirms it with
// the link the platform logged (no mail server) and the sign-up's password; the admin suspends them from the
// users page and they are out at once.
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { env, launch, signIn } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const slug = `acc-${suffix}`;
const invitee = { email: `invitee-${suffix}@example.com`, name: `Invitee ${suffix}`, password: 'first-chosen-password', next: 'second-chosen-password' };

describe('invitations and passwords', () => {
  let browser;
  let page;
  const pageErrors = [];
  let link;

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, admin.email, admin.password);
    const res = await page.request.post('/api/v1/teams', { data: { name: `Accounts ${suffix}`, slug } });
    assert.equal(res.status(), 201, await res.text());
  });

  after(async () => {
    await browser?.close();
    assert.deepEqual(pageErrors, [], 'no script errors');
    assert.deepEqual(browser.cspViolations, [], 'no Content-Security-Policy violation');
  });

  it('invites from the members page and shows the link when nothing is mailed', async () => {
    await page.goto(`/teams/${slug}/members`);
    const invite = page.getByRole('form', { name: 'Invite a member' });
    await invite.getByLabel('Email').fill(invitee.email);
    await invite.getByLabel('Role').selectOption('viewer');
    await invite.getByRole('button', { name: 'Send invitation' }).click();
    link = (await page.getByRole('region', { name: 'Invite a member' }).locator('pre').textContent()).trim();
    assert.match(link, /\/invitations\/fyv_[0-9a-z]+$/);
    await page.locator(`tr[data-invitation="${invitee.email}"]`).waitFor();
  });

  it('lets a newcomer create an account by accepting, and change the password', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await p.goto(new URL(link).pathname);
      await p.getByRole('heading', { level: 1, name: 'Join a team' }).waitFor();
      const create = p.getByRole('form', { name: 'Create your account' });
      await create.getByLabel('Your name').fill(invitee.name);
      await create.getByLabel('Password').fill('short');
      await create.getByRole('button', { name: 'Create account and join' }).click();
      await create.locator('.field-error', { hasText: /12/ }).waitFor();
      await create.getByLabel('Password').fill(invitee.password);
      await create.getByRole('button', { name: 'Create account and join' }).click();
      await p.waitForURL(`**/teams/${slug}`);
      await p.getByRole('button', { name: 'Sign out' }).waitFor();

      await p.getByRole('link', { name: 'Change password' }).click();
      const change = p.getByRole('form', { name: 'Change password' });
      await change.getByLabel('Current password').fill(invitee.password);
      await change.getByLabel('New password').fill(invitee.next);
      await change.getByRole('button', { name: 'Change password' }).click();
      await p.locator('#status', { hasText: /password was changed/ }).waitFor({ state: 'attached' });
      await p.getByRole('button', { name: 'Sign out' }).click();
      await signIn(p, invitee.email, invitee.next);
    } finally {
      await b.close();
    }
    await page.goto(`/teams/${slug}/members`);
    await page.locator(`tr[data-member="${invitee.email}"]`).waitFor();
    assert.equal(await page.locator(`tr[data-invitation="${invitee.email}"]`).count(), 0, 'no longer pending');
  });

  it('answers a reset request on the sign-in page alike for every address', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await p.goto('/signin');
      await p.getByText('Forgot your password?').click();
      const forgot = p.getByRole('form', { name: 'Get a reset link' });
      await forgot.getByLabel('Address of your account').fill(`nobody-${suffix}@example.com`);
      await forgot.getByRole('button', { name: 'Send reset link' }).click();
      await p.getByText(/If an account has that address/).waitFor();
    } finally {
      await b.close();
    }
  });
});

// loggedLink finds the link the platform logged for an address when it had no mail server to send it with.
function loggedLink(email, path) {
  const lines = fs.readFileSync(env('FLOWYARD_LOG_FILE'), 'utf8').split('\n').filter((l) => l.includes(`to=${email}`));
  const links = lines.map((l) => l.match(new RegExp(`link=(\\S+${path}\\S+)`))).filter(Boolean);
  assert.ok(links.length, `a ${path} link for ${email} in the log`);
  return new URL(links.at(-1)[1]).pathname;
}

describe('sign-up and user administration', () => {
  const newcomer = { email: `signup-${suffix}@example.com`, name: `Newcomer ${suffix}`, password: 'newcomer-chosen-password' };
  let browser;
  let page;
  const pageErrors = [];

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, admin.email, admin.password);
  });

  after(async () => {
    await page.request.patch('/api/v1/settings', { data: { signUp: false } });
    await browser?.close();
    assert.deepEqual(pageErrors, [], 'no script errors');
  });

  const setSignUp = async (on) => {
    await page.goto('/admin/users');
    const setting = page.getByRole('form', { name: 'Sign-up setting' });
    await setting.getByLabel(/Anyone may create an account/).setChecked(on);
    await setting.getByRole('button', { name: 'Save' }).click();
    await page.locator('#status', { hasText: on ? 'Sign-up is on.' : 'Sign-up is off.' }).waitFor({ state: 'attached' });
  };

  it('signs up, is held until the address is confirmed, and confirms it with the sign-up password', async () => {
    await setSignUp(true);
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await p.goto('/signin');
      await p.getByRole('link', { name: 'Create an account' }).click();
      const form = p.getByRole('form', { name: 'Create an account' });
      await form.getByLabel('Email').fill(newcomer.email);
      await form.getByLabel('Your name').fill(newcomer.name);
      await form.getByLabel('Password').fill(newcomer.password);
      await form.getByRole('button', { name: 'Create account' }).click();
      await p.locator('#signup-status', { hasText: /Check your mail/ }).waitFor();

      await p.goto('/signin');
      const signInForm = p.getByRole('form', { name: 'Sign in' });
      await signInForm.getByLabel('Email').fill(newcomer.email);
      await signInForm.getByLabel('Password').fill(newcomer.password);
      await signInForm.getByRole('button', { name: 'Sign in' }).click();
      await signInForm.getByText(/Confirm your e-mail address first/).waitFor();

      await p.goto(loggedLink(newcomer.email, '/verify-email/'));
      const confirm = p.getByRole('form', { name: 'Confirm your address' });
      await confirm.getByLabel('Password chosen at sign-up').fill('not-the-chosen-password');
      await confirm.getByRole('button', { name: 'Confirm and sign in' }).click();
      await confirm.getByText(/not the password chosen at sign-up/).first().waitFor();
      await confirm.getByLabel('Password chosen at sign-up').fill(newcomer.password);
      await confirm.getByRole('button', { name: 'Confirm and sign in' }).click();
      await p.getByRole('heading', { level: 1, name: 'Welcome to Flowyard' }).waitFor();
      await p.getByRole('button', { name: 'Sign out' }).waitFor();
    } finally {
      await b.close();
    }
  });

  it('lets an admin suspend the account from the users page, which shuts it out at once', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await signIn(p, newcomer.email, newcomer.password);

      await page.goto('/admin/users');
      const row = page.locator(`tr[data-user="${newcomer.email}"]`);
      await row.getByRole('button', { name: 'Suspend' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Suspend' }).click();
      await row.locator('.badge[data-state="suspended"]').waitFor();

      await p.goto('/');
      await p.waitForURL('**/signin**');
      const signInForm = p.getByRole('form', { name: 'Sign in' });
      await signInForm.getByLabel('Email').fill(newcomer.email);
      await signInForm.getByLabel('Password').fill(newcomer.password);
      await signInForm.getByRole('button', { name: 'Sign in' }).click();
      await signInForm.getByText(/This account is suspended/).waitFor();

      await row.getByRole('button', { name: 'Reinstate' }).click();
      await row.locator('.badge[data-state="active"]').waitFor();
      await signInForm.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('button', { name: 'Sign out' }).waitFor();
    } finally {
      await b.close();
    }
    await setSignUp(false);
    const anonymous = await launch();
    try {
      const p = await anonymous.context.newPage();
      await p.goto('/signin');
      await p.getByRole('form', { name: 'Sign in' }).waitFor();
      assert.equal(await p.getByRole('link', { name: 'Create an account' }).count(), 0, 'no sign-up offered when it is off');
    } finally {
      await anonymous.close();
    }
  });
});
