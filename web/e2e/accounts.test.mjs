// Invitations and passwords in a real browser, on `flowyard dev` without a mail server: an owner invites an
// address from the members page and gets the link to pass on; a newcomer opens it, creates an account by
// accepting and lands in the team; they change their password, sign in with the new one, and the sign-in page
// answers a reset request alike for every address.
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
