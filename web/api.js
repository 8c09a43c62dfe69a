// The gateway's HTTP API (same origin). Errors arrive as a JSON array of code
// strings (401 is {} and ends the session); they are thrown as ApiError.

import { currentSession, endSession } from './auth.js';

export class ApiError extends Error {
  constructor(status, codes) {
    super(`HTTP ${status}: ${codes.join(', ')}`);
    this.status = status;
    this.codes = codes;
  }
}

/** The URL of rel="next" in a Link header (RFC 8288), or null. Only a
 * same-origin target is followed: the token must never go elsewhere. */
export function nextLink(header) {
  if (!header) return null;
  for (const m of header.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]+)*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(m[2]);
    const rels = rel ? (rel[1] ?? rel[2]).toLowerCase().split(/\s+/) : [];
    if (!rels.includes('next')) continue;
    try {
      const url = new URL(m[1], location.href);
      return url.origin === location.origin ? url.pathname + url.search : null;
    } catch {
      return null;
    }
  }
  return null;
}

async function call(method, path, { body, auth = true, headers = {}, signal } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (auth) {
    const s = currentSession();
    if (!s) throw new ApiError(401, ['signed_out']);
    h.Authorization = `Bearer ${s.accessToken}`;
  }
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers: h, signal, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, ['network_error']);
  }
  if (res.status === 401 && auth) {
    endSession('rejected');
    throw new ApiError(401, ['unauthorized']);
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const codes = Array.isArray(data) ? data.filter((c) => typeof c === 'string') : [];
    throw new ApiError(res.status, codes.length ? codes : [`http_${res.status}`]);
  }
  return { data, next: nextLink(res.headers.get('Link')) };
}

/** [{uuid, display_name, handle, message, created_at}], newest activity first. */
export async function listGroups(signal) {
  const { data } = await call('GET', '/api/message_groups', { signal });
  return Array.isArray(data) ? data : [];
}

/** {items: [...chronological], next: url|null}; `url` is a Link from a previous page. */
export async function listMessages(groupUuid, { url, signal } = {}) {
  const path = url || `/api/messages/${encodeURIComponent(groupUuid)}`;
  const { data, next } = await call('GET', path, { signal });
  return { items: Array.isArray(data) ? data : [], next };
}

/** {uuid, handle, display_name}; public, no token sent (as the original). */
export async function userShort(handle, signal) {
  const { data } = await call('GET', `/api/users/@${encodeURIComponent(handle)}/short`, { auth: false, signal });
  return data;
}

/** target: {message_group_uuid} or {handle}. idempotencyKey: the same for a
 * retry of the same message, so the gateway stores it once. */
export async function sendMessage(message, target, idempotencyKey) {
  const { data } = await call('POST', '/api/messages', {
    body: { message, ...target },
    headers: { 'Idempotency-Key': idempotencyKey },
  });
  return data;
}

const CODE_TEXT = {
  message_blank: 'Write a message before sending.',
  message_exceed_max_chars: 'A message can be at most 1024 characters.',
  message_invalid_utf8: 'The message contains characters that cannot be sent.',
  message_group_uuid_blank: 'This conversation is missing.',
  message_group_uuid_invalid: 'This conversation link is not valid.',
  user_reciever_handle_blank: 'Choose who to write to.',
  handle_invalid: 'That handle is not valid.',
  cannot_message_self: 'You cannot send a message to yourself.',
  user_not_found: 'There is no user with that handle.',
  message_group_not_found: 'This conversation does not exist, or you are not in it.',
  not_found: 'Not found.',
  user_not_provisioned: 'Your account is not set up for messaging yet.',
  payload_too_large: 'The message is too large.',
  idempotency_key_invalid: 'The message could not be sent. Reload the page and try again.',
  limit_invalid: 'The page size is not valid.',
  cursor_invalid: 'Older messages could not be loaded. Reload the page.',
  conflict: 'The message could not be sent. Try again.',
  network_error: 'Could not reach the server. Check your connection and try again.',
  upstream_unavailable: 'The service is unavailable right now. Try again in a moment.',
  upstream_busy: 'The service is busy right now. Try again in a moment.',
  upstream_timeout: 'The service took too long to answer. Try again.',
  auth_unavailable: 'Sign-in checks are unavailable right now. Try again in a moment.',
  unauthorized: 'Your session has ended. Sign in again.',
  signed_out: 'Your session has ended. Sign in again.',
};

/** Readable sentences for an error's codes (unknown codes spelled out). */
export function errorText(err) {
  if (!(err instanceof ApiError)) return 'Something went wrong. Try again.';
  return err.codes
    .map((c) => CODE_TEXT[c] || `Error: ${c.replace(/_/g, ' ')}.`)
    .filter((t, i, all) => all.indexOf(t) === i)
    .join(' ');
}
