// Figures for the instance list of an application with 100 instances (seeded by the Go test): bytes
// transferred and first contentful paint, from the browser's own timing APIs, for a cold load (fresh profile,
// nothing cached) and a warm one (reload: the hashed assets come from the cache). Written to
// FLOWYARD_BENCH_FILE and printed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { env, launch, screenshot } from './helpers.mjs';

const listPath = process.env.FLOWYARD_FIGURES_PATH;
const expected = Number(process.env.FLOWYARD_FIGURES_INSTANCES || 100);

// measure reads the navigation's timing entries once the list shows every instance.
async function measure(page) {
  await page.locator('table tbody tr').nth(expected - 1).waitFor();
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const resources = performance.getEntriesByType('resource');
    const sum = (list, key) => list.reduce((n, e) => n + (e[key] || 0), 0);
    const all = [nav, ...resources];
    const scripts = resources.filter((e) => e.name.endsWith('.js'));
    const apiCalls = resources.filter((e) => new URL(e.name).pathname.startsWith('/api/v1/'));
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return {
      transferSize: sum(all, 'transferSize'),
      encodedBodySize: sum(all, 'encodedBodySize'),
      decodedBodySize: sum(all, 'decodedBodySize'),
      scriptFiles: scripts.length,
      scriptTransferSize: sum(scripts, 'transferSize'),
      scriptDecodedBodySize: sum(scripts, 'decodedBodySize'),
      apiRequests: apiCalls.length,
      apiEncodedBodySize: sum(apiCalls, 'encodedBodySize'),
      firstContentfulPaintMs: fcp ? Math.round(fcp.startTime) : null,
      listRenderedMs: Math.round(performance.now()),
      domContentLoadedMs: Math.round(nav.domContentLoadedEventEnd),
    };
  });
}

describe('instance list figures', { skip: !listPath && 'FLOWYARD_FIGURES_PATH is not set' }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  it(`measures the instance list of an application with ${expected} instances`, async () => {
    const page = await browser.context.newPage();
    // Sign in through the API so that the list page is the first page this profile loads (nothing cached).
    const login = await page.request.post('/api/v1/auth/login', { data: { email: env('FLOWYARD_ADMIN_EMAIL'), password: env('FLOWYARD_ADMIN_PASSWORD') } });
    assert.equal(login.status(), 200);
    await page.goto(listPath);
    const cold = await measure(page);
    await page.reload();
    const warm = await measure(page);
    await screenshot(page, 'instance-list', { fullPage: false });
    const figures = {
      what: `instance list page of an application with ${expected} instances (state stopped), flowyard dev on 127.0.0.1, headless Debian chromium`,
      command: 'go test ./platform -run TestDashboardInBrowser -count=1',
      userAgent: await page.evaluate(() => navigator.userAgent),
      measuredAt: new Date().toISOString(),
      cold,
      warm,
    };
    assert.ok(cold.transferSize > 0 && cold.firstContentfulPaintMs !== null, 'the timing APIs answered');
    console.log(`dashboard figures: ${JSON.stringify(figures, null, 2)}`);
    const out = process.env.FLOWYARD_BENCH_FILE;
    if (out) fs.writeFileSync(out, JSON.stringify(figures, null, 2) + '\n');
  });
});
