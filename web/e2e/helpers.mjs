// Shared setup of the dashboard's browser tests: Debian's chromium driven by playwright-core, headless, with a
// fresh profile per browser. platform/dashboard_browser_test.go starts the platform and passes, in the
// environment, FLOWYARD_URL and the users' credentials.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set: run these tests through go test ./platform -run TestDashboardInBrowser`);
  return v;
};

export const baseURL = () => env('FLOWYARD_URL');

const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

// launch starts chromium with a fresh --user-data-dir (Playwright passes the profile directory as that flag). Every
// Content-Security-Policy violation on a dashboard page is recorded (cspViolations), and close fails the test
// that closes the browser when there was one: the dashboard must need nothing its policy forbids.
export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'flowyard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env('FLOWYARD_CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: flags,
    baseURL: baseURL(),
    viewport: { width: 1280, height: 800 },
  });
  context.setDefaultTimeout(30_000);
  const cspViolations = [];
  watchCSP(context, cspViolations);
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    if (cspViolations.length) throw new Error(`Content-Security-Policy violations on the dashboard:\n${cspViolations.join('\n')}`);
  };
  return { context, close, cspViolations };
}

// signIn signs in on the dashboard's own form.
export async function signIn(page, email, password) {
  await page.goto('/signin');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

// screenshot writes docs/screenshots/<name>.png when FLOWYARD_SCREENSHOTS_DIR is set (the whole page, or only
// the viewport with fullPage: false).
export async function screenshot(page, name, { fullPage = true } = {}) {
  const dir = process.env.FLOWYARD_SCREENSHOTS_DIR;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage });
}

// stateOf reads a badge's state (badges carry data-state beside their text).
export const stateOf = (locator) => locator.locator('.badge').first().getAttribute('data-state');

// unlabelled lists the form controls of the page that have no accessible label (a <label>, aria-label or
// aria-labelledby), and the buttons and links with no name.
export function unlabelled(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      if (!el.labels?.length && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) bad.push(el.outerHTML.slice(0, 120));
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
}

// watchCSP records, into list, every Content-Security-Policy violation the browser reports on a page of the
// platform's origin (chromium logs each on the console) in the whole browser context. Editor origins have no such
// policy and are not watched.
function watchCSP(context, list) {
  const platform = new URL(baseURL()).origin;
  context.on('console', (msg) => {
    const url = msg.page()?.url() || '';
    if (url.startsWith(platform) && /Content.Security.Policy/i.test(msg.text())) list.push(`${url}: ${msg.text()}`);
  });
}

// ---- the Node-RED editor, on its instance's own origin ----

// debugFlow injects marker every second into a debug node that shows it in the sidebar.
export const debugFlow = (marker) => [
  { id: 'e2einject', type: 'inject', x: 150, y: 80, name: 'tick', repeat: '1', once: true, onceDelay: '0.1', topic: '',
    payload: marker, payloadType: 'str', props: [{ p: 'payload' }], wires: [['e2edebug']] },
  { id: 'e2edebug', type: 'debug', x: 350, y: 80, name: 'show', active: true, tosidebar: true, console: false, complete: 'payload', wires: [] },
];

// editorLoaded waits until the editor has loaded its palette and flows (its header shows before).
export async function editorLoaded(editor) {
  await editor.locator('#red-ui-header').waitFor({ timeout: 90_000 });
  await editor.waitForFunction(() => window.RED?.nodes?.getType('debug') && RED.workspaces.active(), null, { timeout: 90_000 });
}

// deployInEditor adds a flow to the open tab of the editor, as a paste would, presses Deploy and waits for
// Node-RED to confirm it.
export async function deployInEditor(editor, flow) {
  await editor.evaluate((nodes) => {
    RED.view.importNodes(nodes, { generateIds: true, touchImport: true });
    RED.nodes.dirty(true); // a paste is placed with a click, which marks the flows changed
  }, flow);
  await editor.locator('#red-ui-header-button-deploy').click();
  await editor.locator('.red-ui-notification', { hasText: /Successfully deployed/ }).waitFor({ timeout: 30_000 });
}

// debugMessage waits for a message holding text in the debug sidebar.
export async function debugMessage(editor, text) {
  await editor.evaluate(() => RED.sidebar.show('debug'));
  await editor.locator('.red-ui-debug-msg', { hasText: text }).first().waitFor({ timeout: 30_000 });
}
