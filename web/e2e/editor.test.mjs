// Instances' editors on origins of their own, in a real browser against `flowyard dev`: "Open editor" takes
// the signed-in user to http://<instance id>.editor.localhost:<port>, where a flow deployed in the editor's own
// UI shows its message in the debug sidebar; and a hostile palette module, installed through the editor's
// palette upload, runs its editor script in that page and tries to reach the platform's API and another
// instance's editor with the user's cookies: every attempt gets nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { baseURL, debugFlow, debugMessage, deployInEditor, editorLoaded, env, launch, signIn } from './helpers.mjs';

const admin = { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') };
const suffix = Date.now().toString(36).slice(-5);
const here = path.dirname(fileURLToPath(import.meta.url));

// packProbe packs the hostile module of testdata with the targets written into its editor script.
function packProbe(targets) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowyard-probe-'));
  const source = path.join(here, 'testdata', 'node-red-contrib-flowyard-probe');
  for (const file of fs.readdirSync(source)) {
    const text = fs.readFileSync(path.join(source, file), 'utf8').replace('__FLOWYARD_TARGETS__', JSON.stringify(targets));
    fs.writeFileSync(path.join(dir, file), text);
  }
  const out = execFileSync('npm', ['pack', '--silent'], { cwd: dir, env: { ...process.env, HOME: dir, npm_config_update_notifier: 'false' } });
  return path.join(dir, out.toString().trim().split('\n').pop());
}

// gotNothing tells whether a cross-origin attempt came back empty: refused by the browser (a network error) or
// an opaque answer, which shows a script neither status nor body.
const gotNothing = (r) => Boolean(r.error) || (r.type === 'opaque' && r.status === 0 && r.body === '');

describe('editors on their own origins', () => {
  let browser;
  let page;
  const instances = {}; // name -> {id, url}

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    await signIn(page, admin.email, admin.password);
    const call = async (method, p, data, status) => {
      const res = await page.request.fetch(`/api/v1${p}`, { method, data });
      assert.equal(res.status(), status, `${method} ${p}: ${await res.text()}`);
      return res.json();
    };
    const team = await call('POST', '/teams', { name: `Editors ${suffix}`, slug: `ed-${suffix}` }, 201);
    const app = await call('POST', `/teams/${team.id}/applications`, { name: 'editors' }, 201);
    const first = async (p) => (await call('GET', p, undefined, 200)).items[0].id;
    const spec = { instanceTypeId: await first('/instance-types'), stackId: await first('/stacks'), templateId: await first('/templates') };
    for (const name of ['target', 'victim']) {
      instances[name] = (await call('POST', `/applications/${app.id}/instances`, { ...spec, name: `${name}-${suffix}` }, 202)).instance;
    }
    for (const name of Object.keys(instances)) {
      for (let i = 0; ; i++) {
        instances[name] = await call('GET', `/instances/${instances[name].id}`, undefined, 200);
        if (instances[name].state === 'running') break;
        assert.ok(i < 180, `${name} did not run: ${instances[name].state}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    instances.team = team;
  });

  after(async () => {
    await browser?.close();
  });

  // openEditor clicks "Open editor" on the instance's page and returns the editor's page.
  const openEditor = async (name) => {
    const inst = instances[name];
    await page.goto(`/teams/${instances.team.slug}/instances/${inst.id}`);
    const [editor] = await Promise.all([page.context().waitForEvent('page'), page.getByRole('link', { name: 'Open editor' }).click()]);
    await editorLoaded(editor);
    return editor;
  };

  it('opens the editor on the instance\'s own origin, without the platform\'s cookie', async () => {
    const editor = await openEditor('target');
    const url = new URL(editor.url());
    const platform = new URL(baseURL());
    assert.equal(url.host, `${instances.target.id}.editor.localhost:${platform.port}`);
    assert.equal(url.pathname + url.search, '/', 'the single-use code is not left in the address bar');
    const names = async (u) => (await page.context().cookies(u)).map((c) => c.name).sort();
    assert.deepEqual(await names(url.origin), ['flowyard_editor'], 'the editor origin holds its own cookie only');
    assert.deepEqual(await names(baseURL()), ['flowyard_session'], 'and the platform its own');
    const editorCookie = (await page.context().cookies(url.origin))[0];
    assert.equal(editorCookie.httpOnly, true);
    assert.equal(editorCookie.sameSite, 'Lax');
    assert.equal(editorCookie.domain, url.hostname, 'host-only');
    await deployInEditor(editor, debugFlow(`hello-target-${suffix}`));
    await debugMessage(editor, `hello-target-${suffix}`);
    await editor.close();
  });

  it('gives a hostile module\'s editor script nothing of the platform or of another editor', async (t) => {
    const target = instances.target;
    const tarball = packProbe({
      platform: new URL(baseURL()).origin,
      teamName: `probe-${suffix}`,
      otherId: target.id,
      otherEditor: `http://${target.id}.editor.localhost:${new URL(baseURL()).port}`,
      otherRuntime: new URL(target.url).origin,
    });
    const editor = await openEditor('victim');
    // The palette manager's upload, as a member installs a module from a file: from the editor's own page.
    const upload = await editor.evaluate(async ({ name, base64 }) => {
      const form = new FormData();
      form.append('tarball', new Blob([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], { type: 'application/gzip' }), name);
      const res = await fetch('nodes', { method: 'POST', body: form });
      return { status: res.status, body: await res.text() };
    }, { name: path.basename(tarball), base64: fs.readFileSync(tarball).toString('base64') });
    assert.equal(upload.status, 200, upload.body);
    await editor.reload();
    await editorLoaded(editor);
    await editor.locator('body[data-flowyard-probe]').waitFor({ state: 'attached', timeout: 60_000 });
    const results = JSON.parse(await editor.locator('body').getAttribute('data-flowyard-probe'));
    t.diagnostic(`what the module's script got: ${JSON.stringify(results)}`);

    assert.equal(results.ownFlows.status, 200, `the module's script runs and reaches its own instance: ${JSON.stringify(results.ownFlows)}`);
    for (const [name, r] of Object.entries(results)) {
      if (name === 'ownFlows') continue;
      assert.ok(gotNothing(r), `${name} got something: ${JSON.stringify(r)}`);
    }
    // What the writes would have done, seen from the platform and from the other editor.
    const teams = await (await page.request.get('/api/v1/teams')).json();
    assert.ok(!teams.items.some((t) => t.name === `probe-${suffix}`), 'no team was created with the user\'s cookie');
    const other = await openEditor('target');
    const flows = await other.evaluate(() => fetch('flows').then((r) => r.text()));
    assert.ok(flows.includes(`hello-target-${suffix}`), `the other instance's flows are still deployed: ${flows.slice(0, 300)}`);
    await other.close();
    await editor.close();
  });

  it('raised no Content-Security-Policy violation on the dashboard\'s pages', () => {
    assert.deepEqual(browser.cspViolations, []);
  });
});
