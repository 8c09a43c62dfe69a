// The pages: sign in, the conversation list, one conversation, a new one.
// Each page gets (main, ctx) with ctx = {params, signal, navigate, state,
// notice}; it builds its DOM synchronously (so the router can move focus)
// and fills it in as the API answers.

import { h, announce } from './dom.js';
import { signIn, currentSession } from './auth.js';
import { ApiError, errorText, listGroups, listMessages, sendMessage, userShort } from './api.js';
import { parseApiTime, relativeLabel, fullLabel } from './time.js';
import { live } from './live.js';

export const MAX_CHARS = 1024;

/** Code points, as the server counts them (not UTF-16 units). */
export const charCount = (text) => [...text].length;

// ---- shared pieces ---------------------------------------------------------

function timeEl(iso) {
  const d = parseApiTime(iso);
  if (!d) return h('time', {}, '');
  return h('time', { datetime: d.toISOString(), title: fullLabel(d), 'data-ts': d.getTime() },
    relativeLabel(d));
}

/** Re-labels every <time data-ts> ("5m" becomes "6m"); app.js calls it each minute. */
export function refreshTimes(root = document) {
  const now = new Date();
  for (const t of root.querySelectorAll('time[data-ts]')) {
    t.textContent = relativeLabel(new Date(Number(t.dataset.ts)), now);
  }
}

function who(name, handle) {
  return h('span', { class: 'who' },
    h('span', { class: 'name' }, name), ' ', h('span', { class: 'handle' }, `@${handle}`));
}

function uuidV4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID exists only in secure contexts; a plain-http deploy falls back.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function isAbort(e) {
  return e && e.name === 'AbortError';
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

// ---- sign in ---------------------------------------------------------------

export function signinPage(main, ctx) {
  document.title = 'Sign in · Cruddur';
  const error = h('p', { class: 'error', id: 'signin-error', role: 'alert', hidden: true });
  const handle = h('input', {
    id: 'handle', name: 'handle', autocomplete: 'username', autocapitalize: 'none',
    spellcheck: 'false', required: true, 'aria-describedby': 'signin-error', 'data-autofocus': true,
  });
  const password = h('input', {
    id: 'password', name: 'password', type: 'password', autocomplete: 'current-password',
    required: true, 'aria-describedby': 'signin-error',
  });
  const button = h('button', { type: 'submit', class: 'button' }, 'Sign in');
  const form = h('form', { class: 'card signin-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'handle' }, 'Handle'), handle),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    error, button);
  main.replaceChildren(h('section', { class: 'signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h', tabindex: '-1' }, 'Sign in to Cruddur'),
    ctx.notice ? h('p', { class: 'notice' }, ctx.notice) : null, // app.js announces it
    form));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = handle.value.trim().replace(/^@/, '');
    if (!name || !password.value) {
      showError(error, 'Enter your handle and password.');
      (name ? password : handle).focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      await signIn(name, password.value);
      password.value = '';
      const next = sessionStorage.getItem('cruddur.next');
      sessionStorage.removeItem('cruddur.next');
      ctx.navigate(next && next.startsWith('/messages') ? next : '/messages', { replace: true });
    } catch (err) {
      showError(error, err.message || 'Sign-in failed. Try again.');
      password.select();
      password.focus();
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });
}

// ---- layout with the conversation list beside the content ----------------

function groupItem(g, active) {
  return h('li', { 'data-group': g.uuid },
    h('a', {
      class: 'group', href: `/messages/${encodeURIComponent(g.uuid)}`,
      'aria-current': active ? 'page' : false,
    },
    h('span', { class: 'group-head' }, who(g.display_name, g.handle), timeEl(g.created_at)),
    h('span', { class: 'preview' }, g.message)));
}

/** Builds the two-column frame; returns the parts the page fills in. */
function frame(main, { activeUuid = null, pinned = null } = {}) {
  const list = h('ul', { class: 'groups', 'aria-busy': 'true' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading conversations…');
  const content = h('section', { class: 'content', 'aria-labelledby': 'page-h' });
  main.replaceChildren(h('div', { class: 'layout' },
    h('nav', { class: 'sidebar', 'aria-labelledby': 'groups-h' },
      h('h2', { id: 'groups-h' }, 'Conversations'), pinned, list, status),
    content));
  return { list, status, content, activeUuid };
}

/** Keeps the list live: a changed conversation moves to the top with its new
 * preview; a resync reloads the list. Unsubscribes when the page goes. */
function liveGroups(f, signal) {
  live.addEventListener('message_group', (e) => bumpGroup(f, e.detail), { signal });
  live.addEventListener('resync', () => fillGroups(f, signal).catch(() => {}), { signal });
}

async function fillGroups(f, signal) {
  try {
    const groups = await listGroups(signal);
    f.list.replaceChildren(...groups.map((g) => groupItem(g, g.uuid === f.activeUuid)));
    f.status.textContent = groups.length ? '' : 'No conversations yet.';
    f.status.hidden = groups.length > 0;
    return groups;
  } catch (e) {
    if (isAbort(e)) throw e;
    f.status.textContent = errorText(e);
    return [];
  } finally {
    f.list.removeAttribute('aria-busy');
  }
}

/** After a send or a live event: the group moves to the top with the new
 * preview (unless the list already shows something newer for it). */
function bumpGroup(f, g) {
  if (!g || typeof g.uuid !== 'string') return;
  const old = f.list.querySelector(`li[data-group="${CSS.escape(g.uuid)}"]`);
  const oldTs = Number(old?.querySelector('time')?.dataset.ts);
  const ts = parseApiTime(g.created_at)?.getTime();
  if (old && oldTs > ts) return; // a late copy of an older change
  old?.remove();
  f.list.prepend(groupItem(g, g.uuid === f.activeUuid));
  f.status.hidden = true;
}

// ---- /messages --------------------------------------------------------------

export function groupsPage(main, ctx) {
  document.title = 'Messages · Cruddur';
  const f = frame(main);
  f.content.append(h('h1', { id: 'page-h', tabindex: '-1' }, 'Messages'),
    h('p', { class: 'muted' }, 'Choose a conversation to read it and reply.'));
  liveGroups(f, ctx.signal);
  fillGroups(f, ctx.signal).catch(() => {});
}

// ---- the message form ------------------------------------------------------

/** The composer: live code-point counter, blocks past MAX_CHARS, shows 422
 * codes as text. onSent(data) gets the POST answer. */
function composer({ target, onSent, label = 'Message' }) {
  let key = null; // Idempotency-Key of the current draft: a retry reuses it
  const text = h('textarea', {
    id: 'composer-text', name: 'message', rows: '3', required: true,
    'aria-describedby': 'composer-count composer-error',
  });
  const count = h('span', { id: 'composer-count', class: 'count' }, `0/${MAX_CHARS}`);
  const error = h('p', { id: 'composer-error', class: 'error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'button' }, 'Send');
  const form = h('form', { class: 'composer', novalidate: true },
    h('label', { for: 'composer-text' }, label), text,
    h('div', { class: 'composer-row' }, count, h('span', { class: 'hint' }, 'Ctrl+Enter to send'), button),
    error);
  const tooLong = `This message is over the ${MAX_CHARS}-character limit. Shorten it to send.`;

  const update = () => {
    const n = charCount(text.value);
    const over = n > MAX_CHARS;
    count.textContent = `${n}/${MAX_CHARS}`;
    count.classList.toggle('over', over);
    if (over) text.setAttribute('aria-invalid', 'true');
    else text.removeAttribute('aria-invalid');
    if (over && error.textContent !== tooLong) showError(error, tooLong);
    else if (!over && error.textContent === tooLong) showError(error, '');
  };
  text.addEventListener('input', () => {
    key = null; // a different message: a new key
    update();
  });
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (button.disabled) return;
    const message = text.value;
    if (charCount(message) > MAX_CHARS) {
      showError(error, tooLong);
      text.focus();
      return;
    }
    if (!message.trim()) {
      showError(error, 'Write a message before sending.');
      text.focus();
      return;
    }
    key ??= uuidV4();
    button.disabled = true;
    button.textContent = 'Sending…';
    form.setAttribute('aria-busy', 'true');
    try {
      const data = await sendMessage(message, target, key);
      key = null;
      text.value = '';
      update();
      showError(error, '');
      await onSent(data);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // the router signs out
      showError(error, errorText(err));
      text.focus();
    } finally {
      button.disabled = false;
      button.textContent = 'Send';
      form.removeAttribute('aria-busy');
    }
  });
  return { form, text };
}

// ---- messages feed ----------------------------------------------------------

function messageItem(m, me) {
  const mine = me && m.handle && m.handle.toLowerCase() === me.toLowerCase();
  return h('li', { class: mine ? 'message mine' : 'message', 'data-uuid': m.uuid },
    h('div', { class: 'meta' }, who(m.display_name, m.handle), timeEl(m.created_at)),
    h('p', { class: 'text' }, m.message));
}

function feed() {
  const list = h('ol', { class: 'messages' });
  const older = h('button', { type: 'button', class: 'button secondary older', hidden: true },
    'Load older messages');
  const status = h('p', { class: 'muted', role: 'status' });
  const box = h('section', { class: 'feed', 'aria-label': 'Messages', tabindex: '0' }, older, list, status);
  return { box, list, older, status, seen: new Set() };
}

function appendMessages(fd, items, me, { prepend = false } = {}) {
  const fresh = items.filter((m) => m && !fd.seen.has(m.uuid));
  for (const m of fresh) fd.seen.add(m.uuid);
  const nodes = fresh.map((m) => messageItem(m, me));
  if (prepend) fd.list.prepend(...nodes);
  else fd.list.append(...nodes);
  fd.status.hidden = fd.seen.size > 0;
  return fresh.length;
}

function scrollToEnd(fd) {
  fd.box.scrollTop = fd.box.scrollHeight;
}

// ---- /messages/{uuid} ------------------------------------------------------

export function groupPage(main, ctx) {
  const uuid = ctx.params[0].toLowerCase();
  const me = currentSession()?.handle;
  document.title = 'Conversation · Cruddur';
  const f = frame(main, { activeUuid: uuid });
  const heading = h('h1', { id: 'page-h', tabindex: '-1' }, 'Conversation');
  const fd = feed();
  fd.status.textContent = 'Loading messages…';
  let next = null;
  let other = null;
  const c = composer({
    target: { message_group_uuid: uuid },
    onSent: (m) => {
      appendMessages(fd, [m], me);
      scrollToEnd(fd);
      announce('Message sent.');
      bumpGroup(f, { uuid, display_name: other?.display_name ?? m.display_name,
        handle: other?.handle ?? m.handle, message: m.message, created_at: m.created_at });
    },
  });
  f.content.append(heading, fd.box, c.form);
  if (ctx.state.focusComposer) c.text.setAttribute('data-autofocus', '');

  const setTitle = (person) => {
    if (!person || other) return;
    other = person;
    heading.replaceChildren('Conversation with ', who(person.display_name, person.handle));
    document.title = `${person.display_name} · Cruddur`;
  };

  liveGroups(f, ctx.signal);
  fillGroups(f, ctx.signal).then((groups) => setTitle(groups.find((g) => g.uuid === uuid)))
    .catch(() => {});

  // Live: a message of this conversation is appended (once: the feed skips
  // uuids it shows, so our own send coming back as an event is not doubled);
  // after a resync the newest page is merged in.
  const atEnd = () => fd.box.scrollHeight - fd.box.scrollTop - fd.box.clientHeight < 40;
  let early = []; // live messages that came before the first page: appended after it
  live.addEventListener('message', (e) => {
    const m = e.detail;
    if (!m || m.message_group_uuid?.toLowerCase() !== uuid) return;
    if (early) {
      early.push(m);
      return;
    }
    const follow = atEnd();
    if (appendMessages(fd, [m], me) === 0) return;
    if (follow) scrollToEnd(fd);
    if (!me || m.handle?.toLowerCase() !== me.toLowerCase()) {
      setTitle({ display_name: m.display_name, handle: m.handle });
      announce(`New message from ${m.display_name}.`);
    }
  }, { signal: ctx.signal });
  live.addEventListener('resync', () => {
    listMessages(uuid, { signal: ctx.signal })
      .then(({ items }) => { if (appendMessages(fd, items, me) > 0) scrollToEnd(fd); })
      .catch(() => {});
  }, { signal: ctx.signal });

  listMessages(uuid, { signal: ctx.signal }).then(({ items, next: n }) => {
    appendMessages(fd, [...items, ...early], me);
    early = null;
    fd.status.textContent = 'No messages yet.';
    fd.status.hidden = fd.seen.size > 0;
    next = n;
    fd.older.hidden = !next;
    setTitle(items.find((m) => me && m.handle.toLowerCase() !== me.toLowerCase()));
    scrollToEnd(fd);
  }).catch((e) => {
    if (isAbort(e)) return;
    fd.status.textContent = errorText(e);
    fd.status.hidden = false;
    if (e instanceof ApiError && e.status === 404) c.form.hidden = true;
  });

  fd.older.addEventListener('click', async () => {
    if (!next) return;
    fd.older.disabled = true;
    fd.older.textContent = 'Loading…';
    const before = fd.box.scrollHeight;
    try {
      const page = await listMessages(uuid, { url: next, signal: ctx.signal });
      const added = appendMessages(fd, page.items, me, { prepend: true });
      // Keep the message the reader was looking at in place.
      fd.box.scrollTop += fd.box.scrollHeight - before;
      next = page.next;
      announce(added === 1 ? 'Loaded 1 older message.' : `Loaded ${added} older messages.`);
    } catch (e) {
      if (isAbort(e)) return;
      announce(errorText(e));
      fd.status.textContent = errorText(e);
      fd.status.hidden = false;
    } finally {
      fd.older.disabled = false;
      fd.older.textContent = 'Load older messages';
      if (!next) {
        fd.older.hidden = true;
        fd.box.focus(); // the button is gone: keep focus near where it was
      }
    }
  });
}

// ---- /messages/new/{handle} ------------------------------------------------

export function newPage(main, ctx) {
  const handle = ctx.params[0];
  document.title = `New message to @${handle} · Cruddur`;
  const pinnedLink = h('a', { class: 'group', href: `/messages/new/${handle}`, 'aria-current': 'page' },
    h('span', { class: 'group-head' }, who(handle, handle)),
    h('span', { class: 'preview' }, 'New conversation'));
  const pinned = h('ul', { class: 'groups pinned' }, h('li', {}, pinnedLink));
  const f = frame(main, { pinned });
  const heading = h('h1', { id: 'page-h', tabindex: '-1' }, `New message to @${handle}`);
  const fd = feed();
  fd.status.textContent = 'No messages yet. Say hello!';
  const c = composer({
    target: { handle },
    label: 'First message',
    onSent: (m) => {
      announce('Message sent.');
      // The conversation now exists: show its page (no reload).
      ctx.navigate(`/messages/${m.message_group_uuid}`, { state: { focusComposer: true } });
    },
  });
  c.form.hidden = true;
  f.content.append(heading, fd.box, c.form);

  userShort(handle, ctx.signal).then((u) => {
    heading.replaceChildren('New message to ', who(u.display_name, u.handle));
    pinnedLink.querySelector('.who').replaceWith(who(u.display_name, u.handle));
    document.title = `New message to ${u.display_name} · Cruddur`;
    c.form.hidden = false;
    if (u.handle.toLowerCase() === currentSession()?.handle?.toLowerCase()) {
      fd.status.textContent = 'This is you: you cannot send a message to yourself.';
      c.form.hidden = true;
    }
  }).catch((e) => {
    if (isAbort(e)) return;
    fd.status.textContent = e instanceof ApiError && e.status === 404
      ? `There is no user @${handle}.` : errorText(e);
  });
  liveGroups(f, ctx.signal);
  fillGroups(f, ctx.signal).catch(() => {});
}

export function notFoundPage(main) {
  document.title = 'Not found · Cruddur';
  main.replaceChildren(h('section', { class: 'content' },
    h('h1', { id: 'page-h', tabindex: '-1' }, 'Page not found'),
    h('p', {}, h('a', { href: '/messages' }, 'Go to your messages'))));
}
