// The dashboard end to end in a real browser against `flowyard dev` (real Temporal, real Node-RED, simulated
// devices): sign in, create a team, an application and an instance, watch it run, open its editor, take a
// snapshot and roll back to it, provision devices with a token made on the page, group them, roll the snapshot
// out to the group and watch it succeed; then a member and a viewer of the team see what their roles allow.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseURL, editorLoaded, env, launch, screenshot, signIn, unlabelled } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const member = { email: env('FLOWYARD_MEMBER_EMAIL'), password: env('FLOWYARD_MEMBER_PASSWORD') };
const viewer = { email: env('FLOWYARD_VIEWER_EMAIL'), password: env('FLOWYARD_VIEWER_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const slug = `web-${suffix}`;
const instanceName = `web-${suffix}`;
const DEVICES = 3;

describe('the dashboard', () => {
  let browser;
  let page;
  let agent;
  const pageErrors = [];
  const at = {}; // addresses of pages made along the way

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    agent?.kill('SIGTERM');
    await browser?.close();
  });

  it('signs in and creates a team', async () => {
    await signIn(page, admin.email, admin.password);
    await page.goto('/teams/new');
    await page.getByLabel('Team name').fill(`Web ${suffix}`);
    await page.getByLabel('Slug (optional)').fill(slug);
    await page.getByRole('button', { name: 'Create team' }).click();
    await page.getByRole('heading', { level: 1, name: 'Applications' }).waitFor();
    assert.equal(new URL(page.url()).pathname, `/teams/${slug}`);
    assert.equal(await page.locator('#team-switcher').inputValue(), slug, 'the switcher shows the new team');
    // Switch to another team of the caller and back, with the switcher.
    await page.locator('#team-switcher').selectOption({ label: 'Figures' });
    await page.getByRole('button', { name: 'Open' }).click();
    await page.waitForURL(/\/teams\/figures$/);
    await page.locator('#team-switcher').selectOption(slug);
    await page.getByRole('button', { name: 'Open' }).click();
    await page.waitForURL(new RegExp(`/teams/${slug}$`));
  });

  it('shows an API validation error next to its field and creates an application', async () => {
    await page.getByRole('button', { name: 'Create application' }).click();
    const nameField = page.locator('.field', { has: page.getByLabel('Application name') });
    await nameField.locator('.field-error', { hasText: /required/ }).waitFor();
    assert.equal(await page.getByLabel('Application name').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Application name').fill('plant');
    await page.getByRole('button', { name: 'Create application' }).click();
    await page.getByRole('heading', { level: 1, name: 'plant' }).waitFor();
    at.app = new URL(page.url()).pathname;
  });

  it('creates an instance and sees it run, live', async () => {
    await page.getByLabel('Instance name').fill(instanceName);
    await page.getByRole('button', { name: 'Create instance' }).click();
    await page.getByRole('heading', { level: 1, name: new RegExp(instanceName) }).waitFor();
    at.instance = new URL(page.url()).pathname;
    // No reload: the state arrives by the team's event stream.
    await page.locator('h1 .badge[data-state="running"]').waitFor({ timeout: 180_000 });
    await page.locator('.operation .badge[data-state="succeeded"]').waitFor();
    // Its CPU and memory chart fills once the worker has measured it (every 15 s): Refresh until it shows.
    const health = page.getByRole('region', { name: 'Health (last hour)' });
    for (let i = 0; i < 120 && !(await health.locator('svg.spark').count()); i++) {
      await page.waitForTimeout(500); // a pause between looks, not an assertion on time
      await health.getByRole('button', { name: 'Refresh' }).click();
      await health.locator('svg.spark, .empty').first().waitFor();
    }
    await health.getByRole('img', { name: /^Memory: now \d+ MiB/ }).waitFor();
    await screenshot(page, 'instance');
    assert.deepEqual(await unlabelled(page), [], 'every control of the instance page has a label');
  });

  it('opens the editor of the instance on its own origin', async () => {
    const [editor] = await Promise.all([page.context().waitForEvent('page'), page.getByRole('link', { name: 'Open editor' }).click()]);
    await editorLoaded(editor);
    const url = new URL(editor.url());
    assert.equal(url.host, `${at.instance.split('/').pop()}.editor.localhost:${new URL(baseURL()).port}`);
    assert.equal(url.pathname + url.search, '/');
    await editor.close();
  });

  it('takes a snapshot and rolls back to it', async () => {
    await page.getByLabel('Snapshot name').fill('v1');
    await page.getByRole('button', { name: 'Take snapshot' }).click();
    const row = page.locator('tr[data-snapshot="v1"]');
    await row.waitFor();
    await row.getByRole('button', { name: 'Roll back' }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back to v1?' });
    await dialog.getByRole('button', { name: 'Roll back' }).click();
    await page.locator('.operation', { hasText: 'rollback' }).locator('.badge[data-state="succeeded"]').waitFor({ timeout: 120_000 });
    await page.locator('h1 .badge[data-state="running"]').waitFor();
  });

  it('edits the environment, with the API error shown on the row that caused it', async () => {
    await page.getByRole('button', { name: 'Add variable' }).click();
    const row = page.locator('.env-row').last();
    await row.getByLabel('Name').fill('1bad');
    await row.getByLabel('Value').fill('hello');
    await page.getByRole('button', { name: 'Save environment' }).click();
    await row.locator('.field-error').filter({ hasText: /\S/ }).waitFor();
    await row.getByLabel('Name').fill('GREETING');
    await page.getByRole('button', { name: 'Save environment' }).click();
    await row.locator('.field-error').filter({ hasText: /^$/ }).waitFor({ state: 'attached' });
    await page.getByRole('status').filter({ hasText: 'Environment saved' }).waitFor({ state: 'attached' });
    const saved = await (await page.request.get(`/api/v1/instances/${at.instance.split('/').pop()}`)).json();
    assert.deepEqual(saved.env.filter((e) => e.name === 'GREETING').map((e) => e.value), ['hello']);
  });

  it('restarts the instance after a confirmation, live', async () => {
    await page.getByRole('button', { name: 'Restart', exact: true }).click();
    await page.getByRole('dialog', { name: `Restart ${instanceName}?` }).getByRole('button', { name: 'Restart' }).click();
    await page.locator('.operation', { hasText: 'restart' }).locator('.badge[data-state="succeeded"]').waitFor({ timeout: 120_000 });
    await page.locator('h1 .badge[data-state="running"]').waitFor();
  });

  it('creates a provisioning token on the page and devices provision with it', async () => {
    await page.getByRole('navigation', { name: 'Team' }).getByRole('link', { name: 'Provisioning tokens' }).click();
    await page.getByLabel('Token name').fill('line');
    await page.getByLabel('Application for new devices').selectOption({ label: 'plant' });
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = await page.locator('#new-token').getAttribute('data-token');
    assert.match(token, /^fyp_/);
    assert.match(await page.locator('.copy pre').innerText(), new RegExp(`provisioningToken: ${token}`));
    await screenshot(page, 'provisioning-token');
    assert.deepEqual(await unlabelled(page), [], 'every control of the provisioning page has a label');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowyard-sim-'));
    agent = spawn(env('FLOWYARD_AGENT_BIN'), ['simulate', '--forge-url', baseURL(), '--provisioning-token', token,
      '--count', String(DEVICES), '--delay', '200ms', '--dir', dir], { stdio: ['ignore', 'inherit', 'inherit'] });
  });

  it('creates a device group with the new devices', async () => {
    await page.goto(`${at.app}?tab=groups`);
    await page.getByLabel('Group name').fill('line');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { level: 1, name: 'line' }).waitFor();
    at.group = new URL(page.url()).pathname;
    // The devices register while the page is open; they appear by the event stream.
    const boxes = page.getByRole('group', { name: 'Devices of the application not in this group' }).getByRole('checkbox');
    await boxes.nth(DEVICES - 1).waitFor({ timeout: 90_000 });
    for (let i = 0; i < DEVICES; i++) await boxes.nth(i).check();
    await page.getByRole('button', { name: 'Add to group' }).click();
    await page.getByRole('table', { name: 'Devices in line' }).locator('tbody tr').nth(DEVICES - 1).waitFor();
  });

  it('rolls the snapshot out to the group and watches it succeed', async () => {
    await page.getByLabel('Snapshot to deploy').selectOption({ label: `${instanceName} / v1` });
    await page.getByLabel('Waves (percent of the group, in order)').fill('50, 100');
    await page.getByLabel('Wave timeout').fill('2m');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.waitForURL(/\?rollout=/);
    await page.locator('#rollout-status .badge[data-state="succeeded"]').waitFor({ timeout: 120_000 });
    assert.equal(await page.locator('[data-count="updated"] strong').innerText(), String(DEVICES));
    assert.equal(await page.locator('[data-count="failed"] strong').innerText(), '0');
    await screenshot(page, 'rollout');
    assert.deepEqual(await unlabelled(page), [], 'every control of the group page has a label');
  });

  it("shows the group's latest rollout when the group is opened again", async () => {
    await page.goto(at.group);
    await page.locator('#rollout-status .badge[data-state="succeeded"]').waitFor();
  });

  it('pauses, resumes and approves a rollout that waits between waves', async () => {
    await page.getByLabel('Snapshot to deploy').selectOption({ label: `${instanceName} / v1` });
    await page.getByLabel('Waves (percent of the group, in order)').fill('50, 100');
    await page.getByLabel('Approval', { exact: true }).selectOption('between-waves');
    await page.getByLabel('Wave timeout').fill('2m');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    const status = (state) => page.locator(`#rollout-status .badge[data-state="${state}"]`);
    await status('awaiting_approval').waitFor({ timeout: 90_000 });
    await page.getByRole('button', { name: 'Pause' }).click();
    await status('paused').waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await status('awaiting_approval').waitFor();
    await page.getByRole('button', { name: 'Approve' }).click();
    await status('succeeded').waitFor({ timeout: 90_000 });
  });

  it('shows a device with its active and target snapshot and switches it to developer mode', async () => {
    await page.getByRole('table', { name: 'Devices in line' }).getByRole('link').first().click();
    await page.locator('#active-snapshot', { hasText: 'v1' }).waitFor();
    assert.match(await page.locator('#target-snapshot').innerText(), /v1 \(in sync\)/);
    assert.equal(await page.getByRole('link', { name: 'Open editor' }).count(), 0, 'no editor in autonomous mode');
    await page.getByRole('button', { name: 'Enter developer mode' }).click();
    await page.getByRole('button', { name: 'Leave developer mode' }).waitFor();
    // Developer mode: the device's editor opens in a new tab through the dashboard's /editor/device/<id>/ page.
    const open = page.getByRole('link', { name: 'Open editor' });
    assert.match(await open.getAttribute('href'), /^\/editor\/device\/[0-9a-z]{26}\/$/);
    assert.equal(await open.getAttribute('target'), '_blank');
    await screenshot(page, 'device');
  });

  it('streams a device\'s log and restarts, suspends and starts its Node-RED', async () => {
    await page.locator('#device-logs', { hasText: 'Started flows (simulated)' }).waitFor();
    await page.getByRole('button', { name: 'Restart', exact: true }).click();
    await page.locator('#status', { hasText: 'is restarting Node-RED' }).waitFor();
    await page.getByRole('button', { name: 'Suspend' }).click();
    await page.getByRole('dialog', { name: 'Suspend Node-RED on the device?' }).getByRole('button', { name: 'Suspend' }).click();
    await page.locator('#status', { hasText: 'suspended Node-RED' }).waitFor();
    await page.locator('dl.facts dd', { hasText: 'suspended' }).waitFor();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.locator('dl.facts dd', { hasText: 'running' }).waitFor();
  });

  it('makes a one-time code and new credentials for a device, each shown once', async () => {
    await page.getByRole('button', { name: 'One-time code' }).click();
    const code = await page.locator('#one-time-code').getAttribute('data-token');
    assert.match(code, /^[0-9a-z]{5}(-[0-9a-z]{5}){3}$/);
    assert.match(await page.locator('.copy pre').innerText(), new RegExp(`--otc '${code}' --ff-url `));
    await page.getByRole('button', { name: 'Regenerate credentials' }).click();
    await page.getByRole('dialog', { name: /Regenerate the credentials/ }).getByRole('button', { name: 'Regenerate' }).click();
    await page.getByRole('heading', { name: 'New credentials' }).waitFor();
    assert.match(await page.locator('.copy pre').innerText(), /deviceId: .+\ntoken: fyd_/);
    assert.deepEqual(await unlabelled(page), [], 'every control of the device page has a label');
  });

  it('sets a group\'s fleet settings, keeping the password write-only', async () => {
    await page.getByRole('link', { name: 'line', exact: true }).click();
    const settings = page.getByRole('form', { name: 'Fleet settings of the group' });
    await settings.getByLabel('Node-RED version').fill('4.1.15');
    await settings.getByLabel('Palette catalogues (one URL a line)').fill('https://catalogue.nodered.org/catalogue.json');
    await settings.getByLabel('Local editor login').check();
    await settings.getByLabel('Local editor user').fill('operator');
    await settings.getByLabel('Local editor password').fill('a local password');
    await settings.getByRole('button', { name: 'Save fleet settings' }).click();
    await page.locator('#status', { hasText: 'Fleet settings of the group saved' }).waitFor();
    const groupId = new URL(page.url()).pathname.split('/').pop();
    const group = await (await page.request.get(`/api/v1/device-groups/${groupId}`)).json();
    assert.deepEqual(group.settings, { nodeRedVersion: '4.1.15', palette: { npmrcSet: false, catalogues: ['https://catalogue.nodered.org/catalogue.json'] },
      localAuth: { enabled: true, user: 'operator', passwordSet: true } });
    assert.deepEqual(await unlabelled(page), [], 'every control of the group page has a label');
  });

  it('marks a snapshot as the devices\' target of its instance, and clears it', async () => {
    await page.goto(at.instance);
    const row = page.locator('tr[data-snapshot="v1"]');
    await row.getByRole('button', { name: 'Set as device target' }).click();
    await page.getByRole('dialog', { name: /Deploy v1 to the instance's devices/ }).getByRole('button', { name: 'Set target' }).click();
    await page.locator('#device-target', { hasText: 'v1' }).waitFor();
    await row.locator('[data-device-target]').waitFor();
    await page.getByRole('button', { name: 'Clear device target' }).click();
    await page.getByRole('dialog', { name: 'Clear the device target?' }).getByRole('button', { name: 'Clear' }).click();
    await page.locator('#device-target', { hasText: 'none' }).waitFor();
  });

  it('exports a snapshot and deletes another after a confirmation', async () => {
    await page.goto(at.instance);
    await page.getByLabel('Snapshot', { exact: true }).selectOption({ label: 'v1' });
    await page.getByLabel('Credential secret for the export').fill('a-long-export-secret');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export' }).click()]);
    const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
    assert.equal(exported.name, 'v1');
    assert.ok(Array.isArray(exported.flows), 'the export holds the flows');
    await page.getByLabel('Snapshot name').fill('v2');
    await page.getByRole('button', { name: 'Take snapshot' }).click();
    const row = page.locator('tr[data-snapshot="v2"]');
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete snapshot v2?' }).getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
  });

  it('shows a member the member actions and hides them from a viewer', async () => {
    const teams = await (await page.request.get('/api/v1/teams')).json();
    const team = teams.items.find((t) => t.slug === slug);
    for (const [who, role] of [[member, 'member'], [viewer, 'viewer']]) {
      const res = await page.request.post(`/api/v1/teams/${team.id}/members`, { data: { email: who.email, role } });
      assert.equal(res.status(), 201, await res.text());
    }
    const seen = {};
    for (const [who, role] of [[member, 'member'], [viewer, 'viewer']]) {
      const b = await launch();
      try {
        const p = await b.context.newPage();
        p.on('pageerror', (e) => pageErrors.push(`${role}: ${e.message}`));
        await signIn(p, who.email, who.password);
        await p.goto(at.instance);
        await p.locator('tr[data-snapshot="v1"]').waitFor();
        const shown = async (name) => (await p.getByRole('button', { name, exact: true }).count()) > 0;
        seen[role] = {
          takeSnapshot: await shown('Take snapshot'),
          rollBack: await shown('Roll back'),
          saveEnv: await shown('Save environment'),
          stop: await shown('Stop'),
          deleteInstance: await shown('Delete instance'),
        };
        if (role === 'viewer') await screenshot(p, 'instance-viewer');
      } finally {
        await b.close();
      }
    }
    assert.deepEqual(seen.member, { takeSnapshot: true, rollBack: true, saveEnv: true, stop: false, deleteInstance: false }, 'a member snapshots, rolls back and edits env; owners stop and delete');
    assert.deepEqual(seen.viewer, { takeSnapshot: false, rollBack: false, saveEnv: false, stop: false, deleteInstance: false }, 'a viewer sees none of the member buttons');
  });

  it('signs in with the keyboard alone, with a visible focus', async () => {
    const b = await launch();
    try {
      const p = await b.context.newPage();
      await p.goto('/signin');
      await p.getByLabel('Email').waitFor();
      const focused = () => p.evaluate(() => ({ name: document.activeElement.name || document.activeElement.textContent.trim(),
        outline: getComputedStyle(document.activeElement).outlineStyle }));
      // A page puts the focus on its content, so the first Tab reaches the first field.
      await p.keyboard.press('Tab');
      const email = await focused();
      assert.equal(email.name, 'email');
      assert.notEqual(email.outline, 'none', 'the focused field shows a focus ring');
      await p.keyboard.type(member.email);
      await p.keyboard.press('Tab');
      await p.keyboard.type(member.password);
      await p.keyboard.press('Enter');
      await p.getByRole('button', { name: 'Sign out' }).waitFor();
    } finally {
      await b.close();
    }
  });

  it('raised no script errors and no Content-Security-Policy violation', () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(browser.cspViolations, []);
  });
});
