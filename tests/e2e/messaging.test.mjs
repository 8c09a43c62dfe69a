// End-to-end test of the web client in Debian's headless Chromium, driven by
// playwright-core. tests/e2e/run_e2e.py starts the stack and runs this with:
//   E2E_BASE_URL   the gateway, e.g. http://127.0.0.1:4567 (required)
//   E2E_ARTIFACTS  folder for screenshots (default tests/artifacts/e2e)
//   E2E_PASSWORD   the dev users' password (default Cruddur-dev-1)
//   CHROMIUM       the browser (default /usr/bin/chromium)
// Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, checker, until as untilTrue } from './checks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.E2E_BASE_URL || '').replace(/\/$/, '');
const ART = process.env.E2E_ARTIFACTS || path.join(here, '..', 'artifacts', 'e2e');
const PASSWORD = process.env.E2E_PASSWORD || 'Cruddur-dev-1';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15_000;
const ZONE = 'Asia/Kolkata';
if (!BASE) {
  console.error('E2E_BASE_URL is not set');
  process.exit(2);
}
fs.mkdirSync(ART, { recursive: true });

const run = Date.now().toString(36); // makes this run's messages unique
const { check, done } = checker((name) => shot(`failure-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`));
const until = (fn, what, timeout = TIMEOUT) => untilTrue(fn, what, timeout);

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cruddur-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1200, height: 800 },
  // A zone that is not the machine's (UTC) and has a half-hour offset, so a
  // time shown in UTC or with a wrong offset cannot pass.
  timezoneId: ZONE,
  locale: 'en-US',
  // Without the background-networking flags Chromium keeps dialling Google's
  // hosts, which this machine's closed network refuses.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(TIMEOUT);

const problems = []; // CSP violations and uncaught exceptions, from every page
page.on('console', (m) => {
  if (/Content[- ]Security[- ]Policy/i.test(m.text())) problems.push(`console: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
let posts = 0;
page.on('request', (r) => {
  if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/messages') posts++;
});

async function shot(name) {
  await page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true });
}

/** A marker that a full page load would wipe out. */
async function markPage() {
  const token = `m${Math.random()}`;
  await page.evaluate((t) => { window.__e2eMarker = t; }, token);
  return async () => (await page.evaluate(() => window.__e2eMarker)) === token;
}

const sidebar = () => page.locator('nav.sidebar');
const feedItems = () => page.locator('ol.messages > li.message');
const composerText = () => page.getByLabel(/^(Message|First message)$/);

async function signIn(handle, { keyboard = false } = {}) {
  await page.getByLabel('Handle').waitFor();
  if (keyboard) {
    // Keyboard only: the handle field has focus on arrival, Tab, Enter.
    await until(() => page.evaluate(() => document.activeElement?.id === 'handle'), 'focus on Handle');
    await page.keyboard.type(handle);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Handle').fill(handle);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await page.waitForURL(/\/messages(\/|$)/);
  await until(async () => (await page.locator('#me').textContent()) === `@${handle}`, `@${handle} in the header`);
}

const sentToBayko = `Hello Bayko from e2e ${run} <script>window.__xss=1</script>`;
const sentToLondo = `First message to Londo, e2e ${run} 🚀`;
let baykoGroupUrl = null;
let londoGroupUrl = null;

await check('pages are served with content type, CSP and nosniff', async () => {
  const res = await page.goto(`${BASE}/messages`);
  const hd = res.headers();
  assert(res.status() === 200, `status ${res.status()}: does the gateway serve web/ (GATEWAY_STATIC_DIR)?`);
  assert(hd['content-type'] === 'text/html; charset=utf-8', `content-type ${hd['content-type']}`);
  assert(/default-src 'none'/.test(hd['content-security-policy'] || ''), `CSP ${hd['content-security-policy']}`);
  assert(/frame-ancestors 'none'/.test(hd['content-security-policy'] || ''), 'frame-ancestors');
  assert(hd['x-content-type-options'] === 'nosniff', 'nosniff');
  const js = await page.request.get(`${BASE}/app.js`);
  assert(js.headers()['content-type'].startsWith('text/javascript'), `app.js type ${js.headers()['content-type']}`);
  const etag = js.headers().etag;
  const again = await page.request.get(`${BASE}/app.js`, { headers: { 'If-None-Match': etag } });
  assert(again.status() === 304, `revalidation status ${again.status()}`);
  const cfg = await (await page.request.get(`${BASE}/config.json`)).json();
  assert(cfg.clientId && cfg.cognitoEndpoint, 'config.json has clientId and cognitoEndpoint');
  assert((await page.request.get(`${BASE}/README.md`)).status() === 404, 'README.md is not served');
}, { critical: true });

await check('signed out, /messages goes to the sign-in page', async () => {
  await page.waitForURL(/\/signin$/);
  await page.getByRole('heading', { name: 'Sign in to Cruddur' }).waitFor();
  await shot('01-signin');
});

await check('a wrong password shows an error and stays signed out', async () => {
  await page.getByLabel('Handle').fill('andrewbrown');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const err = page.locator('#signin-error');
  await until(async () => (await err.textContent()) === 'Incorrect handle or password.', 'the sign-in error');
  assert(/\/signin$/.test(page.url()), 'still on /signin');
  // An unknown handle gets the same words: the form does not tell which handles exist.
  await err.evaluate((e) => { e.textContent = ''; });
  await page.getByLabel('Handle').fill(`nobody_${run}`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await until(async () => (await err.textContent()) === 'Incorrect handle or password.', 'the same error');
  assert(await page.evaluate(() => sessionStorage.getItem('cruddur.session') === null), 'no session');
});

await check('sign in as andrewbrown shows the conversations', async () => {
  await signIn('andrewbrown');
  assert(/\/messages$/.test(page.url()), `landed on ${page.url()}`);
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('cruddur.session')).accessToken);
  assert(token && token.split('.').length === 3, 'access token in sessionStorage');
  assert(await page.evaluate(() => localStorage.length === 0), 'nothing in localStorage');
  await sidebar().getByText('@bayko').first().waitFor();
  await shot('02-messages');
}, { critical: true });

await check('open the conversation with bayko', async () => {
  const marker = await markPage();
  await sidebar().locator('a', { hasText: '@bayko' }).first().click();
  await page.waitForURL(/\/messages\/[0-9a-f-]{36}$/);
  baykoGroupUrl = page.url();
  await page.getByRole('heading', { level: 1, name: /Andrew Bayko/ }).waitFor();
  await until(async () => (await feedItems().count()) > 0, 'messages in the feed');
  assert(await marker(), 'the link navigated without a page load');
  const current = sidebar().locator('a[aria-current="page"]');
  assert((await current.count()) === 1 && /@bayko/.test(await current.textContent()), 'active conversation marked');
  assert(await page.evaluate(() => document.activeElement?.tagName === 'H1'), 'focus moved to the page heading');
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, textarea, select')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML));
  assert(unlabelled.length === 0, `fields without a label: ${unlabelled.join(' ')}`);
  assert(await page.locator('#announce[aria-live="polite"]').count() === 1, 'a live region for announcements');
  await shot('03-conversation');
});

await check('a sent message appears without a reload, as text', async () => {
  const marker = await markPage();
  const before = await feedItems().count();
  await composerText().fill(sentToBayko);
  assert((await page.locator('#composer-count').textContent()) === `${[...sentToBayko].length}/1024`, 'live counter');
  await page.getByRole('button', { name: 'Send' }).click();
  const mine = feedItems().filter({ hasText: sentToBayko });
  await mine.first().waitFor();
  assert((await feedItems().count()) === before + 1, 'exactly one message added');
  assert(await marker(), 'no full page reload');
  assert((await mine.locator('.text').textContent()) === sentToBayko, 'message shown verbatim');
  assert(await page.evaluate(() => window.__xss === undefined && !document.querySelector('ol.messages script')),
    'markup in a message is not executed');
  assert((await composerText().inputValue()) === '', 'composer cleared');
  assert((await page.locator('#composer-count').textContent()) === '0/1024', 'counter reset');
  const preview = sidebar().locator('li').first();
  assert((await preview.textContent()).includes(sentToBayko), 'conversation list shows the new preview first');
  await shot('04-conversation-sent');
  // It was stored: a fresh load shows it once.
  await page.reload();
  await until(async () => (await feedItems().filter({ hasText: sentToBayko }).count()) === 1, 'the message after reload');
});

await check('older messages load through the Link cursor', async () => {
  const older = page.getByRole('button', { name: 'Load older messages' });
  let count = await feedItems().count();
  if (!(await older.isVisible())) {
    // Fewer than a page: add enough through the API so a second page exists.
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('cruddur.session')).accessToken);
    const group = baykoGroupUrl.split('/').pop();
    for (let i = count; i <= 20; i++) {
      const r = await page.request.post(`${BASE}/api/messages`, {
        headers: { Authorization: `Bearer ${token}`, 'Idempotency-Key': `e2e-${run}-${i}` },
        data: { message: `filler ${i} ${run}`, message_group_uuid: group },
      });
      assert(r.status() === 200, `filler POST ${r.status()}`);
    }
    await page.reload();
    await until(async () => (await feedItems().count()) >= 20, 'a full first page');
    count = await feedItems().count();
  }
  await older.waitFor();
  const firstBefore = await feedItems().first().getAttribute('data-uuid');
  const marker = await markPage();
  await older.click();
  await until(async () => (await feedItems().count()) > count, 'older messages prepended');
  assert(await marker(), 'no reload');
  assert((await feedItems().first().getAttribute('data-uuid')) !== firstBefore, 'older ones come first');
  const times = await page.locator('ol.messages time').evaluateAll((ts) => ts.map((t) => Date.parse(t.dateTime)));
  assert(times.every((t, i) => i === 0 || times[i - 1] <= t), 'chronological after prepending');
  const uuids = await feedItems().evaluateAll((ls) => ls.map((l) => l.dataset.uuid));
  assert(new Set(uuids).size === uuids.length, 'no duplicates');
  await shot('05-conversation-older');
});

await check('times are shown in the browser zone with relative labels', async () => {
  const times = await page.locator('ol.messages time, nav.sidebar time').evaluateAll((ts) =>
    ts.map((t) => ({ iso: t.dateTime, label: t.textContent, title: t.title })));
  assert(times.length > 0, 'time labels present');
  // The page's rule, computed here for the browser's zone: now / 5m / 3h / "Mar 3".
  const day = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', timeZone: ZONE });
  const dayYear = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', year: 'numeric', timeZone: ZONE });
  const year = new Intl.DateTimeFormat('en-US', { year: 'numeric', timeZone: ZONE });
  const expected = (d, now) => {
    const min = (now - d) / 60000;
    if (min < 1) return 'now';
    if (min < 60) return `${Math.floor(min)}m`;
    if (min < 1440) return `${Math.floor(min / 60)}h`;
    return (year.format(d) === year.format(now) ? day : dayYear).format(d);
  };
  const now = Date.now();
  for (const t of times) {
    const d = new Date(t.iso);
    // Labels are computed at render time and refreshed each minute.
    const ok = [0, 30_000, 60_000, 90_000].some((back) => expected(d, now - back) === t.label);
    assert(ok, `label "${t.label}" for ${t.iso}, expected "${expected(d, now)}"`);
    assert(/GMT\+5:30/.test(t.title), `tooltip not in the browser zone: ${t.title}`);
  }
  assert(times.some((t) => /^(now|\d+m)$/.test(t.label)), 'the new message is minutes old');
  assert(times.some((t) => /^[A-Z][a-z]{2,3} \d{1,2}(, \d{4})?$/.test(t.label)) || times.every((t) => now - Date.parse(t.iso) < 86_400_000),
    'older messages show a date like "Mar 3"');
});

await check('start a new conversation at /messages/new/londo', async () => {
  await page.goto(`${BASE}/messages/new/londo`);
  await page.getByRole('heading', { level: 1, name: /New message to Londo Mollari/ }).waitFor();
  await composerText().waitFor();
  await shot('06-new-conversation');
  const marker = await markPage();
  await composerText().fill(sentToLondo);
  await composerText().press('Control+Enter'); // keyboard send
  await page.waitForURL(/\/messages\/[0-9a-f-]{36}$/);
  londoGroupUrl = page.url();
  assert(londoGroupUrl !== baykoGroupUrl, 'a different conversation');
  await feedItems().filter({ hasText: sentToLondo }).first().waitFor();
  assert(await marker(), 'went to the conversation page without a reload');
  await page.getByRole('heading', { level: 1, name: /Londo Mollari/ }).waitFor();
  await until(() => page.evaluate(() => document.activeElement?.id === 'composer-text'), 'focus in the composer');
  await sidebar().getByText(sentToLondo).waitFor();
  await shot('07-new-conversation-sent');
});

await check('sign out', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/signin$/);
  await page.locator('p.notice', { hasText: 'You have signed out.' }).waitFor();
  assert(await page.evaluate(() => sessionStorage.getItem('cruddur.session') === null), 'token removed');
  assert(await page.locator('#account').isHidden(), 'account bar hidden');
  await page.goto(`${BASE}/messages`);
  await page.waitForURL(/\/signin$/);
  await shot('08-signed-out');
});

await check('sign in as londo (keyboard only) and see the conversation with its preview', async () => {
  await signIn('londo', { keyboard: true });
  const item = sidebar().locator('li', { hasText: '@andrewbrown' }).first();
  await item.waitFor();
  assert((await item.locator('.preview').textContent()) === sentToLondo, 'preview is the first message');
  assert((await item.locator('.name').textContent()) === 'Andrew Brown', 'the other person shown');
  await shot('09-londo-messages');
  await item.locator('a').click();
  await page.waitForURL(londoGroupUrl);
  await feedItems().filter({ hasText: sentToLondo }).first().waitFor();
  await shot('10-londo-conversation');
});

await check('an over-long message is blocked with a visible error', async () => {
  const before = posts;
  const text = composerText();
  // 1024 code points (2048 UTF-16 units): at the limit, accepted.
  await text.fill('😀'.repeat(1024));
  assert((await page.locator('#composer-count').textContent()) === '1024/1024', 'counts code points');
  assert(await page.locator('#composer-error').isHidden(), 'no error at exactly 1024');
  await text.fill('a'.repeat(1025));
  const err = page.locator('#composer-error');
  await err.waitFor();
  assert(/over the 1024-character limit/.test(await err.textContent()), 'error text');
  assert((await page.locator('#composer-count').textContent()) === '1025/1024', 'counter 1025/1024');
  assert((await text.getAttribute('aria-invalid')) === 'true', 'aria-invalid set');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.waitForTimeout(500);
  assert(posts === before, 'no POST was sent');
  assert((await feedItems().filter({ hasText: 'a'.repeat(1025) }).count()) === 0, 'nothing appended');
  assert(await err.isVisible(), 'error still visible after trying to send');
  await shot('11-over-long-blocked');
  await text.fill('');
  await until(() => err.isHidden(), 'error cleared when short again');
});

await check('a rejected token signs out with a notice', async () => {
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('cruddur.session'));
    s.accessToken = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.';
    sessionStorage.setItem('cruddur.session', JSON.stringify(s));
  });
  await page.locator('a.brand').click(); // client-side navigation to /messages, which calls the API
  await page.waitForURL(/\/signin$/);
  await page.locator('p.notice', { hasText: 'Your session has ended. Sign in again.' }).waitFor();
  assert(await page.evaluate(() => sessionStorage.getItem('cruddur.session') === null), 'token removed');
  await shot('12-session-ended');
});

await check('no CSP violations or uncaught errors', async () => {
  assert(problems.length === 0, problems.slice(0, 5).join(' | '));
});

await context.close();
fs.rmSync(userDir, { recursive: true, force: true });
process.exit(done());
