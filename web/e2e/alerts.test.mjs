// Alerts in a real browser: an owner adds a webhook (its secret shown once; one on this machine is refused with
// the reason next to the URL), a rule sending crashes to it, sends a test and sees the delivery in the log; a
// member reads the page without the controls that change it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { env, launch, screenshot, signIn, unlabelled } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const member = { email: env('FLOWYARD_MEMBER_EMAIL'), password: env('FLOWYARD_MEMBER_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const slug = `alerts-${suffix}`;

describe('alerts', () => {
  let browser;
  let page;
  const pageErrors = [];

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, admin.email, admin.password);
    const res = await page.request.post('/api/v1/teams', { data: { name: `Alerts ${suffix}`, slug } });
    assert.equal(res.status(), 201, await res.text());
    const team = await res.json();
    const add = await page.request.post(`/api/v1/teams/${team.id}/members`, { data: { email: member.email, role: 'member' } });
    assert.equal(add.status(), 201, await add.text());
  });

  after(async () => {
    await browser?.close();
    assert.deepEqual(pageErrors, [], 'no script errors');
  });

  it('adds a webhook, refusing one on this machine, and shows its secret once', async () => {
    await page.goto(`/teams/${slug}/alerts`);
    await page.getByRole('heading', { level: 1, name: 'Alerts' }).waitFor();
    const create = page.getByRole('form', { name: 'Create a webhook' });
    await create.getByLabel('Webhook name').fill('ops');
    await create.getByLabel('URL').fill('http://127.0.0.1:9/hook');
    await create.getByRole('button', { name: 'Create webhook' }).click();
    await create.locator('[data-field="url"] .field-error', { hasText: /loopback, private or link-local/ }).waitFor();
    await create.getByLabel('URL').fill('https://203.0.113.10/hook');
    await create.getByRole('button', { name: 'Create webhook' }).click();
    assert.match(await page.locator('#webhook-secret').textContent(), /^whsec_[0-9a-z]+$/);
    await page.getByRole('table', { name: 'Webhooks of the team' }).getByRole('cell', { name: 'ops', exact: true }).waitFor();
  });

  it('adds a rule that sends crashes to the webhook and by e-mail', async () => {
    const create = page.getByRole('form', { name: 'Create an alert rule' });
    await create.getByLabel('Rule name').fill('crashes');
    await create.getByRole('button', { name: 'Create rule' }).click();
    await create.locator('[data-field="kinds"] .field-error', { hasText: /at least one/ }).waitFor();
    await create.getByLabel('Instance crashed').check();
    await create.getByLabel('Device offline for longer than…').check();
    await create.getByLabel('Device offline for longer than (minutes)').fill('15');
    await create.getByLabel('E-mail').selectOption('owner');
    await create.getByLabel('Webhook').selectOption({ label: 'ops' });
    await create.getByRole('button', { name: 'Create rule' }).click();
    const row = page.getByRole('table', { name: 'Alert rules of the team' }).getByRole('row', { name: /crashes/ });
    await row.getByRole('cell', { name: 'Instance crashed, Device offline > 15 min' }).waitFor();
    assert.deepEqual(await unlabelled(page), [], 'every control of the alerts page has a label');
  });

  it('sends a test and sees its delivery in the log', async () => {
    await page.getByRole('table', { name: 'Webhooks of the team' }).getByRole('button', { name: 'Send test' }).click();
    const log = page.getByRole('region', { name: 'Delivery log' });
    for (let i = 0; i < 60 && !(await log.getByRole('row', { name: /Test alert from Flowyard/ }).count()); i++) {
      await log.getByRole('button', { name: 'Refresh' }).click();
      await log.locator('table, .empty').first().waitFor();
    }
    await log.getByRole('row', { name: /Test alert from Flowyard.*webhook ops/ }).waitFor();
    await screenshot(page, 'alerts');
  });

  it('shows a member the rules, webhooks and log without the controls', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await signIn(p, member.email, member.password);
      await p.goto(`/teams/${slug}/alerts`);
      await p.getByRole('table', { name: 'Alert rules of the team' }).waitFor();
      assert.equal(await p.getByRole('form', { name: 'Create a webhook' }).count(), 0);
      assert.equal(await p.getByRole('button', { name: 'Send test' }).count(), 0);
    } finally {
      await b.close();
    }
  });
});
