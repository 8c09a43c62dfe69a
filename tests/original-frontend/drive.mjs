// Drives the original Cruddur React frontend (frontend-react-js, Week 5) in
// Debian's headless Chromium against our gateway. tests/original-frontend/check
// starts everything and runs this with:
//   OF_FRONTEND_URL  where the frontend is served, e.g. http://localhost:3000 (required)
//   OF_GATEWAY_URL   the gateway the frontend was built against (required)
//   OF_ARTIFACTS     folder for screenshots (default tests/artifacts/original-frontend)
//   OF_PASSWORD      the dev users' password (default Cruddur-dev-1)
//   CHROMIUM         the browser (default /usr/bin/chromium)
// The selectors are the original's class names (message_group_item,
// message_item, message_form); nothing of the original is copied here.
// Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, checker, until as poll } from '../e2e/checks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// playwright-core from tests/e2e (pinned by its package-lock.json).
const { chromium } = createRequire(path.join(here, '..', 'e2e', 'package.json'))('playwright-core');
const FRONT = (process.env.OF_FRONTEND_URL || '').replace(/\/$/, '');
const GATEWAY = (process.env.OF_GATEWAY_URL || '').replace(/\/$/, '');
const ART = process.env.OF_ARTIFACTS || path.join(here, '..', 'artifacts', 'original-frontend');
const PASSWORD = process.env.OF_PASSWORD || 'Cruddur-dev-1';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 60_000; // the development server is slow on a busy machine
if (!FRONT || !GATEWAY) {
  console.error('OF_FRONTEND_URL and OF_GATEWAY_URL must be set');
  process.exit(2);
}
fs.mkdirSync(ART, { recursive: true });

const run = Date.now().toString(36); // makes this run's messages unique

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Without the background-networking flags Chromium keeps dialling Google's
  // hosts, which a closed network refuses.
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});

/** One signed-in person: a browser context of their own and what it saw. */
async function person(handle) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.setDefaultNavigationTimeout(2 * TIMEOUT);
  const p = { handle, context, page, api: [], errors: [] };
  page.on('pageerror', (e) => p.errors.push(e.message));
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.origin === GATEWAY) p.api.push({ method: r.request().method(), path: u.pathname, status: r.status() });
  });
  page.on('requestfailed', (r) => {
    const u = new URL(r.url());
    if (u.origin === GATEWAY) p.api.push({ method: r.method(), path: u.pathname, status: 'failed' });
  });
  return p;
}

// Named checks (a failed critical one fails the rest fast), as in tests/e2e.
const { check, done } = checker(async () => {});

async function shot(p, name) {
  await p.page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true });
}

/** The statuses the gateway gave p for method + path (a RegExp) so far. */
function statuses(p, method, re) {
  return p.api.filter((a) => a.method === method && re.test(a.path)).map((a) => a.status);
}

const until = (fn, what, timeout = TIMEOUT) => poll(fn, what, timeout, 150);

// The original signs in with Amplify's Auth.signIn(username, password); its
// field is labelled "Email", cognito-local's pool signs in by username (the handle).
async function signIn(p) {
  await p.page.goto(`${FRONT}/signin`);
  await p.page.locator('.signin_form input[type=text]').fill(p.handle);
  await p.page.locator('.signin_form input[type=password]').fill(PASSWORD);
  await p.page.getByRole('button', { name: 'Sign In' }).click();
  await p.page.waitForURL(`${FRONT}/`);
  const token = await p.page.evaluate(() => localStorage.getItem('access_token'));
  assert(token && token.split('.').length === 3, 'no access token in localStorage');
}

const groupItems = (p) => p.page.locator('.message_group_feed_collection .message_group_item');
const messageItems = (p) => p.page.locator('.message_feed_collection .message_item');

/** Sends text from the message form; the original reloads /messages/{group} on 200. */
async function send(p, text) {
  const posted = p.page.waitForResponse((r) => r.url() === `${GATEWAY}/api/messages` && r.request().method() === 'POST');
  await p.page.locator('form.message_form textarea').fill(text);
  await p.page.locator('form.message_form button[type=submit]').click();
  const res = await posted;
  assert(res.status() === 200, `POST /api/messages answered ${res.status()}`);
  // The page reloads at /messages/{the answer's message_group_uuid} (its body
  // is gone with the old page, so the address is where to read it).
  const re = new RegExp(`^${FRONT}/messages/([0-9a-f-]{36})$`);
  await p.page.waitForURL(re);
  return re.exec(p.page.url())[1];
}

async function seesMessage(p, text) {
  await until(async () => (await messageItems(p).filter({ hasText: text }).count()) === 1, `"${text}" in the conversation`);
}

const andrew = await person('andrewbrown');
const bayko = await person('bayko');
const londo = await person('londo');
const toBayko = `Hello Bayko from the original frontend ${run}`;
const toLondo = `First message to Londo from the original frontend ${run}`;
let baykoGroup = null;

await check('sign in (Amplify USER_PASSWORD_AUTH against cognito-local)', async () => {
  await signIn(andrew);
  await shot(andrew, '01-home-after-sign-in');
}, { critical: true });

await check('home feed: /api/activities/home is not ours and answers 404 with a JSON body', async () => {
  // The home page's own call (after its CORS preflight), then the body.
  await until(async () => statuses(andrew, 'GET', /^\/api\/activities\/home$/).includes(404),
    "the home page's GET /api/activities/home answering 404");
  const r = await andrew.page.evaluate(async (u) => {
    const res = await fetch(`${u}/api/activities/home`, { headers: { Authorization: `Bearer ${localStorage.getItem('access_token')}` } });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  }, GATEWAY);
  assert(r.status === 404, `status ${r.status}`);
  assert(/^application\/json/.test(r.type || ''), `content type ${r.type}`);
  JSON.parse(r.body);
});

await check('conversation list at /messages', async () => {
  await andrew.page.goto(`${FRONT}/messages`);
  await until(async () => (await groupItems(andrew).count()) >= 1, 'a conversation in the list');
  const bay = groupItems(andrew).filter({ hasText: '@bayko' });
  assert((await bay.count()) === 1, 'no conversation with @bayko');
  assert((await bay.locator('.display_name').textContent()) === 'Andrew Bayko', 'display name of bayko');
  assert(((await bay.locator('.message').textContent()) || '').length > 0, 'no preview text');
  const ago = (await bay.locator('.created_at .ago').textContent()) || '';
  assert(ago.length > 0, 'no time shown');
  const href = await bay.getAttribute('href');
  assert(/^\/messages\/[0-9a-f-]{36}$/.test(href), `link ${href}`);
  baykoGroup = href.split('/').pop();
  assert(statuses(andrew, 'GET', /^\/api\/message_groups$/).includes(200), 'GET /api/message_groups was not 200');
  await shot(andrew, '02-conversation-list');
}, { critical: true });

await check('one conversation at /messages/{uuid}', async () => {
  await groupItems(andrew).filter({ hasText: '@bayko' }).click();
  await andrew.page.waitForURL(`${FRONT}/messages/${baykoGroup}`);
  await until(async () => (await messageItems(andrew).count()) >= 2, 'messages in the conversation');
  const handles = await messageItems(andrew).locator('.handle').allTextContents();
  assert(handles.includes('@andrewbrown') && handles.includes('@bayko'), `senders ${handles}`);
  const active = andrew.page.locator('.message_group_item.active');
  assert((await active.count()) === 1, 'the open conversation is not marked active');
  assert(statuses(andrew, 'GET', new RegExp(`^/api/messages/${baykoGroup}$`)).includes(200), 'GET /api/messages/{uuid} was not 200');
  await shot(andrew, '03-conversation');
});

await check('sending a message in a conversation', async () => {
  const g = await send(andrew, toBayko);
  assert(g === baykoGroup, `the answer names group ${g}, not ${baykoGroup}`);
  await seesMessage(andrew, toBayko);
  const last = messageItems(andrew).last();
  assert((await last.locator('.message').textContent()) === toBayko, 'the new message is not the last one');
  await shot(andrew, '04-after-sending');
});

await check('the other person sees the message and the new preview', async () => {
  await signIn(bayko);
  await bayko.page.goto(`${FRONT}/messages`);
  const withAndrew = groupItems(bayko).filter({ hasText: '@andrewbrown' });
  await until(async () => (await withAndrew.locator('.message').textContent()) === toBayko, 'the preview of the new message');
  await withAndrew.click();
  await seesMessage(bayko, toBayko);
  await shot(bayko, '05-bayko-sees-it');
});

let londoGroup = null;
await check('starting a conversation at /messages/new/londo', async () => {
  await andrew.page.goto(`${FRONT}/messages/new/londo`);
  const fresh = andrew.page.locator('.message_group_item.active');
  await until(async () => ((await fresh.textContent()) || '').includes('@londo'), 'the new conversation item for @londo');
  assert((await fresh.locator('.display_name').textContent()) === 'Londo Mollari', 'display name of londo');
  assert(statuses(andrew, 'GET', /^\/api\/users\/@londo\/short$/).includes(200), 'GET /api/users/@londo/short was not 200');
  await shot(andrew, '06-new-conversation');
  londoGroup = await send(andrew, toLondo);
  await seesMessage(andrew, toLondo);
  await until(async () => (await groupItems(andrew).filter({ hasText: '@londo' }).count()) === 1, 'londo in the list');
  await shot(andrew, '07-new-conversation-sent');
});

await check('londo sees the new conversation', async () => {
  await signIn(londo);
  await londo.page.goto(`${FRONT}/messages`);
  const withAndrew = groupItems(londo).filter({ hasText: '@andrewbrown' });
  await until(async () => (await withAndrew.count()) === 1, 'the conversation with @andrewbrown');
  assert((await withAndrew.locator('.message').textContent()) === toLondo, 'preview of the first message');
  await withAndrew.click();
  await londo.page.waitForURL(`${FRONT}/messages/${londoGroup}`);
  await seesMessage(londo, toLondo);
  await shot(londo, '08-londo-sees-it');
});

await check('londo replies and andrew sees the reply', async () => {
  const reply = `Reply from Londo ${run}`;
  await send(londo, reply);
  await seesMessage(londo, reply);
  await andrew.page.goto(`${FRONT}/messages/${londoGroup}`);
  await seesMessage(andrew, reply);
  await shot(andrew, '09-andrew-sees-reply');
});

await check('no messaging call failed and no page error', async () => {
  const bad = [andrew, bayko, londo].flatMap((p) => p.api
    .filter((a) => !/^\/api\/activities\//.test(a.path) && a.status !== 200 && a.status !== 204)
    .map((a) => `${p.handle}: ${a.method} ${a.path} -> ${a.status}`));
  const errs = [andrew, bayko, londo].flatMap((p) => p.errors.map((e) => `${p.handle}: ${e}`));
  assert(bad.length === 0 && errs.length === 0, [...bad, ...errs].join('; '));
});

for (const p of [andrew, bayko, londo]) {
  fs.writeFileSync(path.join(ART, `api-${p.handle}.json`), JSON.stringify(p.api, null, 1));
}
await browser.close();
console.log(`# screenshots in ${ART}`);
process.exit(done());
