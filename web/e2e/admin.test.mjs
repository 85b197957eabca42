// The team, pipeline, billing and platform-admin pages in a real browser: an admin (owner of a new team) sees
// each page's heading and its write buttons, and errors land beside what caused them (the last owner cannot be
// demoted; an instance type used by a stack cannot be deleted); a viewer of the team sees the pages their role
// may read without a single write button, and no link to the pages it may not.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { env, launch, screenshot, signIn } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const viewer = { email: env('FLOWYARD_VIEWER_EMAIL'), password: env('FLOWYARD_VIEWER_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const slug = `adm-${suffix}`;

const adminPages = [
  ['/admin/stacks', 'Stacks', 'Create stack'],
  ['/admin/templates', 'Templates', 'Create template', 'admin-templates'],
  ['/admin/instance-types', 'Instance types', 'Create instance type'],
  ['/admin/team-types', 'Team types', 'Create team type'],
  ['/admin/blueprints', 'Blueprints', 'Create blueprint'],
];
// Buttons no viewer may see on any of these pages.
const writeButtons = /^(Create .*|Add .*|Change role|Remove|Save .*|Set schedule|Stop scheduled snapshots|Edit|Delete.*|Promote.*|Subscribe with Stripe|Rename)$/;

describe('team and admin pages', () => {
  let browser;
  let page;
  const pageErrors = [];
  const at = {};

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signIn(page, admin.email, admin.password);
    const call = async (method, path, data, status) => {
      const res = await page.request.fetch(`/api/v1${path}`, { method, data });
      assert.equal(res.status(), status, `${method} ${path}: ${await res.text()}`);
      return res.json();
    };
    const team = await call('POST', '/teams', { name: `Admin ${suffix}`, slug }, 201);
    const app = await call('POST', `/teams/${team.id}/applications`, { name: 'line' }, 201);
    const [stack] = (await call('GET', '/stacks', undefined, 200)).items;
    const [template] = (await call('GET', '/templates', undefined, 200)).items;
    const { instance } = await call('POST', `/applications/${app.id}/instances`,
      { name: `adm-${suffix}`, stackId: stack.id, templateId: template.id, instanceTypeId: stack.instanceTypeId }, 202);
    const pipeline = await call('POST', `/applications/${app.id}/pipelines`, { name: 'release' }, 201);
    await call('POST', `/pipelines/${pipeline.id}/stages`, { name: 'dev', target: { instanceId: instance.id } }, 201);
    await call('POST', `/teams/${team.id}/members`, { email: viewer.email, role: 'viewer' }, 201);
    Object.assign(at, { team, instance, pipeline,
      viewerPages: [[`/teams/${slug}/members`, 'Members'], [`/teams/${slug}/instances/${instance.id}/snapshot-schedule`, 'Snapshot schedule'],
        ...adminPages.map(([path, heading]) => [path, heading])] });
  });

  after(async () => { await browser?.close(); });

  const heading = (p, name) => p.getByRole('heading', { level: 1, name, exact: true }).waitFor();

  it('shows an admin every page with its write actions', async () => {
    const teamPages = [
      [`/teams/${slug}/members`, 'Members', 'Add member', 'members'],
      [`/teams/${slug}/audit-log`, 'Audit log', null, 'audit-log'],
      [`/teams/${slug}/pipelines`, 'Pipelines', 'Create pipeline'],
      [`/teams/${slug}/pipelines/${at.pipeline.id}`, 'release', 'Add stage', 'pipeline'],
      [`/teams/${slug}/instances/${at.instance.id}/snapshot-schedule`, 'Snapshot schedule', 'Set schedule'],
      [`/teams/${slug}/billing`, 'Billing', null],
      ['/admin/users', 'Users', 'Create user'],
    ];
    for (const [path, name, button, shot] of [...teamPages, ...adminPages]) {
      await page.goto(path);
      await heading(page, name);
      if (button) assert.equal(await page.getByRole('button', { name: button, exact: true }).count(), 1, `${path} offers ${button}`);
      if (shot) await screenshot(page, shot);
    }
    await page.goto(`/teams/${slug}/audit-log`);
    await page.locator('td code', { hasText: 'team.member.added' }).first().waitFor();
  });

  it('shows the last owner\'s demotion refused beside the role form', async () => {
    await page.goto(`/teams/${slug}/members`);
    const row = page.locator(`tr[data-member="${admin.email}"]`);
    await row.locator('select[name="role"]').selectOption('member');
    await row.getByRole('button', { name: 'Change role' }).click();
    await row.locator('.form-error', { hasText: /at least one owner/ }).waitFor();
  });

  it('shows a delete refused for an object in use beside its Delete button', async () => {
    const type = await (await page.request.post('/api/v1/instance-types', { data: { name: `used-${suffix}` } })).json();
    const res = await page.request.post('/api/v1/stacks', { data: { name: `uses-${suffix}`, nodeRedVersion: '4.1.15', memoryMB: 256, cpuPercent: 50, instanceTypeId: type.id } });
    assert.equal(res.status(), 201, await res.text());
    await page.goto('/admin/instance-types');
    const row = page.locator(`tr[data-name="used-${suffix}"]`);
    await row.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await row.locator('.action-error', { hasText: /still used by 1 stacks/ }).waitFor();
  });

  it('warns an admin when instances run unisolated, as /readyz says', async () => {
    const p = await browser.context.newPage();
    p.on('pageerror', (e) => pageErrors.push(`isolation: ${e.message}`));
    await p.route('**/readyz', (route) => route.fulfill({ json: { store: 'ok', instances: 'not isolated: bwrap not found' } }));
    await p.goto('/admin/stacks');
    await heading(p, 'Stacks');
    await p.locator('#isolation-warning', { hasText: 'Instances not isolated: bwrap not found' }).waitFor();
    await p.close();
    const unfiltered = await browser.context.newPage();
    unfiltered.on('pageerror', (e) => pageErrors.push(`isolation: ${e.message}`));
    await unfiltered.route('**/readyz', (route) => route.fulfill({ json: { store: 'ok', instances: 'not isolated: network not filtered: nftables does not work here' } }));
    await unfiltered.goto('/admin/stacks');
    await heading(unfiltered, 'Stacks');
    await unfiltered.locator('#isolation-warning', { hasText: /network not filtered: nftables does not work here\. Any flow can reach the platform's services/ }).waitFor();
    await unfiltered.close();
    const real = await (await page.request.get('/readyz')).json();
    await page.goto('/admin/stacks');
    await heading(page, 'Stacks');
    const warning = page.locator('#isolation-warning');
    if (real.instances === 'ok') assert.ok(await warning.isHidden(), 'no warning while instances are isolated');
    else await warning.waitFor();
  });

  it('shows a viewer the pages without write buttons', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      p.on('pageerror', (e) => pageErrors.push(`viewer: ${e.message}`));
      await signIn(p, viewer.email, viewer.password);
      for (const [path, name] of at.viewerPages) {
        await p.goto(path);
        await heading(p, name);
        const buttons = await p.locator('#main').getByRole('button').allInnerTexts();
        assert.deepEqual(buttons.filter((t) => writeButtons.test(t.trim())), [], `${path} shows a viewer no write button`);
      }
      await p.goto(`/teams/${slug}/members`);
      await heading(p, 'Members');
      const nav = await p.locator('#nav').innerText();
      for (const hidden of ['Audit log', 'Pipelines', 'Billing', 'Stacks', 'Users']) assert.ok(!nav.includes(hidden), `a viewer has no ${hidden} link`);
      assert.ok(nav.includes('Members'));
    } finally {
      await b.close();
    }
  });

  it('raised no script errors', () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(browser.cspViolations, [], 'no Content-Security-Policy violation');
  });
});
