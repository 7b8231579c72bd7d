/// <reference lib="dom" />
/**
 * The inspector page in a real browser: Debian's Chromium driven by playwright-core.
 * Where Chromium is missing locally the test is skipped and says why; under CI it must run
 * (`.ci/run` installs Chromium), so a missing browser fails there instead.
 */
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoAgent } from '../../src/index.ts';
import { Client, startGateway } from '../gateway/client.ts';

const CHROMIUM = '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) {
  const why = `browser test skipped: ${CHROMIUM} not found (install it with: apt-get install -y chromium)`;
  if (process.env.CI === 'true') throw new Error(`${why} — CI must run it`);
  console.warn(why);
}
// The README's screenshot is refreshed with UPDATE_SCREENSHOT=1; otherwise it goes to a temp file.
const screenshot = process.env.UPDATE_SCREENSHOT
  ? fileURLToPath(new URL('../../docs/inspector.png', import.meta.url))
  : join(tmpdir(), `baton-inspector-${process.pid}.png`);

describe.runIf(available)('inspector page (Chromium)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('lists sessions live with their states and highlights the current state on the diagram', async () => {
    const g = await startGateway({ runtime: { agent: demoAgent({ delayMs: 25 }) } });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(`${g.http}/inspect`);
      const slow = await Client.attach(g.url, { session_id: 'slow-session' });
      const quick = await Client.attach(g.url, { session_id: 'quick-session' });
      const onboarding = await Client.attach(g.url, { session_id: 'new-user', worker_type: 'onboarding' });
      quick.client.send('input', { content: 'hello' });
      await quick.client.type('done');
      slow.client.send('input', { content: Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ') });
      await slow.client.type('message.delta');

      await page.waitForSelector('tr[data-id="slow-session"] td[data-state="busy"]');
      await page.waitForSelector('tr[data-id="quick-session"] td[data-state="idle"]');
      await page.waitForSelector('tr[data-id="new-user"] td[data-state="idle"]');
      await page.click('tr[data-id="slow-session"]');
      await page.waitForFunction(() => document.querySelector<HTMLElement>('#diagram')?.dataset.active?.includes('session.running.busy'));
      const highlighted = await page.$$eval('#diagram g.node.active title', (titles) => titles.map((t) => t.textContent));
      expect(highlighted).toContain('session.running.busy.working');
      await page.waitForFunction(() => document.querySelectorAll('#events div').length > 3);
      await page.screenshot({ path: screenshot, fullPage: true });
      expect(statSync(screenshot).size).toBeGreaterThan(10_000);

      await slow.client.type('done');
      await page.waitForFunction(() => document.querySelector<HTMLElement>('#diagram')?.dataset.active?.includes('session.running.idle'));
      const after = await page.$$eval('#diagram g.node.active title', (titles) => titles.map((t) => t.textContent));
      expect(after).toContain('session.running.idle.quiet'); // idle is a cluster; its active child is the node
      expect(after).not.toContain('session.running.busy.working');
      await page.close();
      for (const c of [slow, quick, onboarding]) await c.client.close();
    } finally {
      await g.gateway.close();
    }
  }, 60_000);
});
