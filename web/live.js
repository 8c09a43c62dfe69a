// Live events: GET /api/events read as server-sent events through fetch
// (EventSource cannot send the Authorization header). One stream per tab
// while signed in; pages subscribe with live.addEventListener(type, fn,
// {signal}) and get CustomEvents whose detail is the event's JSON:
//   'message'        an item of /api/messages/{uuid} plus message_group_uuid
//   'message_group'  an item of /api/message_groups (moved to the top)
//   'resync'         something may have been missed: reload the lists
// The stream reconnects by itself with backoff and Last-Event-ID, so after a
// drop it goes on where it stopped.

import { currentSession, endSession } from './auth.js';

export const live = new EventTarget();

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// No byte (events or the server's 15 s keep-alive comment) for this long:
// the connection is dead even if TCP has not noticed.
const SILENCE_MS = 45_000;

let lastId = null;      // the id of the last event handled: the resume point
let running = null;     // AbortController of the current stream, or null
let backoff = BACKOFF_MIN_MS;

/** Parses SSE text; calls onEvent({id, event, data}) per complete event and
 * returns the unparsed rest (a partial event waiting for more bytes). */
export function parseSse(buffer, onEvent, state) {
  let start = 0;
  for (;;) {
    const nl = buffer.indexOf('\n', start);
    if (nl < 0) break;
    let line = buffer.slice(start, nl);
    start = nl + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') {
      if (state.data.length) onEvent({ id: state.id, event: state.event || 'message', data: state.data.join('\n') });
      state.event = '';
      state.data = [];
      continue;
    }
    if (line.startsWith(':')) continue; // a comment: the keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') state.id = value;
    else if (field === 'event') state.event = value;
    else if (field === 'data') state.data.push(value);
  }
  return buffer.slice(start);
}

function emit(type, detail) {
  live.dispatchEvent(new CustomEvent(type, { detail }));
}

function handle({ id, event, data }) {
  let detail = null;
  try {
    detail = JSON.parse(data);
  } catch {
    return; // not ours: skip it, keep the previous resume point
  }
  if (id) lastId = id;
  if (event === 'message' || event === 'message_group' || event === 'resync') emit(event, detail);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

function retryAfterMs(res) {
  const s = Number(res.headers.get('Retry-After'));
  return Number.isFinite(s) && s > 0 ? s * 1000 : 0;
}

/** One connection: resolves when it ends; returns the wait before the next. */
async function connectOnce(ctl) {
  const session = currentSession();
  if (!session) return -1;
  const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${session.accessToken}` };
  if (lastId) headers['Last-Event-ID'] = lastId;
  let res;
  try {
    res = await fetch('/api/events', { headers, signal: ctl.signal, credentials: 'omit', cache: 'no-store' });
  } catch {
    return backoff;
  }
  if (res.status === 401) {
    endSession('rejected');
    return -1;
  }
  if (res.status === 400) {
    // Our resume point is not accepted (another deploy's, too old): start
    // from now and have the pages reload what they show.
    lastId = null;
    emit('resync', { reason: 'resume point refused' });
    return BACKOFF_MIN_MS;
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => {});
    return Math.max(backoff, retryAfterMs(res));
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const state = { id: null, event: '', data: [] };
  let buffer = '';
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => reader.cancel().catch(() => {}), SILENCE_MS);
  };
  arm();
  let gotEvent = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      arm();
      buffer = parseSse(buffer + value, (ev) => {
        gotEvent = true;
        handle(ev);
      }, state);
    }
  } catch {
    // aborted or the connection dropped: reconnect below
  } finally {
    clearTimeout(timer);
  }
  if (gotEvent) backoff = BACKOFF_MIN_MS; // it worked: the next drop retries soon
  return backoff;
}

async function run(ctl) {
  while (!ctl.signal.aborted) {
    const wait = await connectOnce(ctl);
    if (wait < 0 || ctl.signal.aborted) break;
    // Jitter spreads the reconnects of every client of a draining gateway.
    await sleep(wait / 2 + Math.random() * wait / 2, ctl.signal);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }
  if (running === ctl) running = null;
}

/** Starts the stream when signed in and not running yet. */
export function startLive() {
  if (running || !currentSession()) return;
  running = new AbortController();
  run(running);
}

/** Stops the stream (sign-out, session end); the resume point is forgotten. */
export function stopLive() {
  running?.abort();
  running = null;
  lastId = null;
  backoff = BACKOFF_MIN_MS;
}
