// A protected instance's Dashboard 2 through the instance's own address, in a real browser, on `flowyard dev`
// (platform/endpoints_e2e_test.go's TestDashboardThroughAddressInBrowser sets up the instance, with
// @flowfuse/node-red-dashboard from npm, and names it in FLOWYARD_ENDPOINTS_*). A browser that opens the
// dashboard is sent through the platform's sign-in and back to the page, which then shows the flow's value over
// its socket.io websocket; the platform's cookie never goes to the address. Skipped when the variables are unset
// (the whole-suite run of TestDashboardInBrowser).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { baseURL, launch } from './helpers.mjs';

const dashboardURL = process.env.FLOWYARD_ENDPOINTS_DASHBOARD;
const user = { email: process.env.FLOWYARD_ENDPOINTS_EMAIL, password: process.env.FLOWYARD_ENDPOINTS_PASSWORD };

describe('a dashboard on the instance\'s own address', { skip: !dashboardURL && 'FLOWYARD_ENDPOINTS_DASHBOARD is not set' }, () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
  });
  after(async () => browser?.close());

  it('signs in through the platform and shows the Dashboard 2 page with its live value', async () => {
    await page.goto(dashboardURL);
    // The address sent the browser to the platform, which asks for a sign-in first.
    await page.waitForURL((u) => u.origin === new URL(baseURL()).origin && u.pathname === '/signin');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // …then back, through the address's one-time code, to the page it asked for.
    await page.waitForURL((u) => u.href === dashboardURL, { timeout: 30_000 });
    await page.getByText('hello from the dashboard').waitFor({ timeout: 60_000 });
    const address = new URL(dashboardURL).origin;
    const cookies = await browser.context.cookies(address);
    assert.deepEqual(cookies.map((c) => c.name), ['flowyard_endpoints'], 'only the address\'s own cookie goes there');
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].domain, new URL(dashboardURL).hostname, 'host-only');
  });
});
