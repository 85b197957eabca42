// Node-RED upgrades and blueprints per team type in a real browser: an owner changes an instance's Node-RED
// version from its page and sees it run on the new stack; an admin moves every instance of a stack from the
// Stacks page and follows the move to its end; a blueprint offered to one team type is listed on the
// create-instance form of a team of that type only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { env, launch, signIn, stateOf } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const slug = `upg-${suffix}`;

describe('upgrades and blueprints', () => {
  let browser;
  let page;
  const pageErrors = [];
  const at = {};
  let call;

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, admin.email, admin.password);
    call = async (method, path, data, status) => {
      const res = await page.request.fetch(`/api/v1${path}`, { method, data });
      assert.equal(res.status(), status, `${method} ${path}: ${await res.text()}`);
      return res.json();
    };
    const team = await call('POST', '/teams', { name: `Upgrades ${suffix}`, slug }, 201);
    const app = await call('POST', `/teams/${team.id}/applications`, { name: 'line' }, 201);
    const [seeded] = (await call('GET', '/stacks', undefined, 200)).items;
    const other = await call('POST', '/stacks', { name: `roomy-${suffix}`, nodeRedVersion: seeded.nodeRedVersion, memoryMB: 320, cpuPercent: 100 }, 201);
    const [template] = (await call('GET', '/templates', undefined, 200)).items;
    const { instance } = await call('POST', `/applications/${app.id}/instances`,
      { name: `upg-${suffix}`, stackId: seeded.id, templateId: template.id, instanceTypeId: seeded.instanceTypeId }, 202);
    for (let i = 0; i < 300 && (await call('GET', `/instances/${instance.id}`, undefined, 200)).state !== 'running'; i++) {
      await page.waitForTimeout(500);
    }
    Object.assign(at, { team, app, seeded, other, instance });
  });

  after(async () => {
    await browser?.close();
    assert.deepEqual(pageErrors, [], 'no script errors');
  });

  it('changes an instance\'s Node-RED version from its page', async () => {
    await page.goto(`/teams/${slug}/instances/${at.instance.id}`);
    await page.locator('#instance-stack', { hasText: at.seeded.name }).waitFor();
    const upgrade = page.getByRole('form', { name: 'Change Node-RED version' });
    await upgrade.getByLabel('Stack').selectOption({ label: `Node-RED ${at.other.nodeRedVersion} (stack ${at.other.name})` });
    await upgrade.getByRole('button', { name: 'Change version' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Change version' }).click();
    await page.locator('#instance-stack', { hasText: at.other.name }).waitFor({ timeout: 120_000 });
    await page.locator('h1 .badge[data-state="running"]').waitFor({ timeout: 120_000 });
    assert.equal((await call('GET', `/instances/${at.instance.id}`, undefined, 200)).stackId, at.other.id);
  });

  it('moves every instance of a stack from the Stacks page', async () => {
    await page.goto('/admin/stacks');
    const move = page.getByRole('form', { name: 'Move every instance of a stack' });
    await move.getByLabel('From stack').selectOption(at.other.id);
    await move.getByLabel('To stack').selectOption(at.seeded.id);
    await move.getByRole('button', { name: 'Move instances' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Move instances' }).click();
    const done = page.locator('tr[data-status="succeeded"]', { hasText: at.other.name });
    for (let i = 0; i < 120 && !(await done.count()); i++) {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await page.waitForTimeout(1000);
    }
    assert.equal(await done.count(), 1, 'the move succeeded');
    await done.getByRole('button', { name: 'Instances' }).click();
    const part = page.locator(`tr[data-instance="upg-${suffix}"]`);
    assert.equal(await stateOf(part), 'moved');
    assert.equal((await call('GET', `/instances/${at.instance.id}`, undefined, 200)).stackId, at.seeded.id);
  });

  it('lists a blueprint only for the team types it is offered to', async () => {
    const pro = await call('POST', '/team-types', { name: `Pro ${suffix}`, selfService: true }, 201);
    await page.goto('/admin/blueprints');
    const create = page.getByRole('form', { name: 'Create a blueprint' });
    await create.getByLabel('Name', { exact: true }).fill(`pro-only-${suffix}`);
    await create.getByLabel(`Pro ${suffix}`).check();
    await create.getByRole('button', { name: 'Create blueprint' }).click();
    await page.locator('tr[data-name]', { hasText: `pro-only-${suffix}` }).filter({ hasText: `Pro ${suffix}` }).waitFor();

    const options = async () => {
      await page.goto(`/teams/${slug}/applications/${at.app.id}`);
      const select = page.getByRole('form', { name: 'Create an instance' }).getByLabel(/^Blueprint/);
      await select.waitFor(); // allTextContents does not wait: before the page renders it would answer []
      return select.locator('option').allTextContents();
    };
    assert.ok(!(await options()).includes(`pro-only-${suffix}`), 'not offered to the team\'s type');
    await call('PATCH', `/teams/${at.team.id}`, { teamTypeId: pro.id }, 200);
    assert.ok((await options()).includes(`pro-only-${suffix}`), 'offered once the team is on Pro');
  });
});
