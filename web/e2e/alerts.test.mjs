// Alerts in a real browser: an owner adds a webhook (its secret shown once; a URL that is not http(s) is refused
// with the reason next to the field), a rule sending crashes to it, sends a test that a receiver on this machine
// gets with a valid signature, and sees the delivery succeed in the log; a member reads the page without the
// controls that change it. The platform runs with --webhooks-allow-private (the receiver is on 127.0.0.1;
// the refusal of such destinations by default is tested in Go).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { env, launch, screenshot, signIn, unlabelled } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const member = { email: env('FLOWYARD_MEMBER_EMAIL'), password: env('FLOWYARD_MEMBER_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const slug = `alerts-${suffix}`;

// receiver accepts webhook deliveries on 127.0.0.1, keeping each with whether its signature verified.
function receiver() {
  const got = [];
  let secret = '';
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]+)$/.exec(req.headers['x-flowyard-signature'] || '') || [];
      const want = crypto.createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');
      got.push({ event: req.headers['x-flowyard-event'], signed: !!v1 && crypto.timingSafeEqual(Buffer.from(v1), Buffer.from(want)) });
      res.writeHead(204).end();
    });
  });
  return { got, server, setSecret: (s) => { secret = s; } };
}

describe('alerts', () => {
  let browser;
  let page;
  const pageErrors = [];
  const hook = receiver();

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await new Promise((resolve) => hook.server.listen(0, '127.0.0.1', resolve));
    await signIn(page, admin.email, admin.password);
    const res = await page.request.post('/api/v1/teams', { data: { name: `Alerts ${suffix}`, slug } });
    assert.equal(res.status(), 201, await res.text());
    const team = await res.json();
    const add = await page.request.post(`/api/v1/teams/${team.id}/members`, { data: { email: member.email, role: 'member' } });
    assert.equal(add.status(), 201, await add.text());
  });

  after(async () => {
    hook.server.close();
    await browser?.close();
    assert.deepEqual(pageErrors, [], 'no script errors');
  });

  it('adds a webhook, refusing a URL that is not http(s), and shows its secret once', async () => {
    await page.goto(`/teams/${slug}/alerts`);
    await page.getByRole('heading', { level: 1, name: 'Alerts' }).waitFor();
    const create = page.getByRole('form', { name: 'Create a webhook' });
    await create.getByLabel('Webhook name').fill('ops');
    await create.getByLabel('URL').fill('ftp://127.0.0.1/hook');
    await create.getByRole('button', { name: 'Create webhook' }).click();
    await create.locator('[data-field="url"] .field-error', { hasText: /http:\/\/ or https:\/\// }).waitFor();
    await create.getByLabel('URL').fill(`http://127.0.0.1:${hook.server.address().port}/flowyard`);
    await create.getByRole('button', { name: 'Create webhook' }).click();
    const secret = await page.locator('#webhook-secret').textContent();
    assert.match(secret, /^whsec_[0-9a-z]+$/);
    hook.setSecret(secret);
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

  it('sends a test, which the receiver gets signed, and sees it delivered in the log', async () => {
    await page.getByRole('table', { name: 'Webhooks of the team' }).getByRole('button', { name: 'Send test' }).click();
    const log = page.getByRole('region', { name: 'Delivery log' });
    const delivered = log.getByRole('row', { name: /Test alert from Flowyard.*webhook ops.*succeeded/ });
    for (let i = 0; i < 120 && !(await delivered.count()); i++) {
      await page.waitForTimeout(500); // a pause between looks, not an assertion on time
      await log.getByRole('button', { name: 'Refresh' }).click();
      await log.locator('table, .empty').first().waitFor();
    }
    await delivered.waitFor();
    assert.deepEqual(hook.got, [{ event: 'test', signed: true }]);
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
