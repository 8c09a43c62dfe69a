// Sign-in against Cognito (InitiateAuth, USER_PASSWORD_AUTH, as the original's
// Amplify did) and the session kept in sessionStorage (see README.md: why not
// localStorage). The session ends when the access token expires or the API
// answers 401; listeners registered with onSessionEnd() are told why.

const KEY = 'cruddur.session';
// Stop using a token a little before its exp so a request in flight does not
// arrive with an expired one.
const EXPIRY_MARGIN_MS = 15_000;

let configPromise = null;
let expiryTimer = null;
const endListeners = new Set();

/** /config.json, rendered by the gateway: {cognitoEndpoint, clientId, region}. */
export function loadConfig() {
  configPromise ??= fetch('/config.json', { cache: 'no-cache', credentials: 'omit' })
    .then((r) => {
      if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`);
      return r.json();
    })
    .catch((e) => {
      configPromise = null; // let a later attempt retry
      throw e;
    });
  return configPromise;
}

export class SignInError extends Error {}

const COGNITO_MESSAGES = {
  // The same text for both, so the form does not reveal which handles exist.
  NotAuthorizedException: 'Incorrect handle or password.',
  UserNotFoundException: 'Incorrect handle or password.',
  // cognito-local's answer to a wrong password (AWS says NotAuthorizedException).
  InvalidPasswordException: 'Incorrect handle or password.',
  UserNotConfirmedException: 'This account is not confirmed yet.',
  PasswordResetRequiredException: 'This account needs a password reset.',
  TooManyRequestsException: 'Too many attempts. Wait a moment and try again.',
  LimitExceededException: 'Too many attempts. Wait a moment and try again.',
  InvalidParameterException: 'Enter your handle and password.',
};

function decodeClaims(jwt) {
  const part = String(jwt).split('.')[1] || '';
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Signs in; resolves to the new session or rejects with a SignInError whose
 * message is fit to show. The password is sent to Cognito only. */
export async function signIn(handle, password) {
  let cfg;
  try {
    cfg = await loadConfig();
  } catch {
    throw new SignInError('The sign-in settings could not be loaded. Try again.');
  }
  let res;
  try {
    res = await fetch(cfg.cognitoEndpoint, {
      method: 'POST',
      credentials: 'omit',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': 'AWSCognitoIdentityProviderService.InitiateAuth',
      },
      body: JSON.stringify({
        AuthFlow: 'USER_PASSWORD_AUTH',
        ClientId: cfg.clientId,
        AuthParameters: { USERNAME: handle, PASSWORD: password },
      }),
    });
  } catch {
    throw new SignInError('Could not reach the sign-in service. Check your connection and try again.');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const type = String(body.__type || res.headers.get('x-amzn-errortype') || '')
      .split('#').pop().split(':')[0];
    throw new SignInError(COGNITO_MESSAGES[type] || 'Sign-in failed. Try again.');
  }
  if (body.ChallengeName) {
    throw new SignInError('This account needs a sign-in step this page does not support yet.');
  }
  const token = body.AuthenticationResult && body.AuthenticationResult.AccessToken;
  let claims;
  try {
    claims = decodeClaims(token);
  } catch {
    throw new SignInError('The sign-in service answered with an unreadable token.');
  }
  const lifetime = Number(body.AuthenticationResult.ExpiresIn) * 1000;
  let expiresAt = Number(claims.exp) * 1000;
  if (!Number.isFinite(expiresAt)) expiresAt = Date.now() + (lifetime || 3600_000);
  const session = {
    accessToken: token,
    expiresAt: expiresAt - EXPIRY_MARGIN_MS,
    handle: typeof claims.username === 'string' ? claims.username : handle,
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  scheduleExpiry(session);
  return session;
}

/** The live session or null (an expired one is ended on the way). */
export function currentSession() {
  let s = null;
  try {
    s = JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    s = null;
  }
  if (!s || typeof s.accessToken !== 'string' || typeof s.expiresAt !== 'number') return null;
  if (Date.now() >= s.expiresAt) {
    endSession('expired');
    return null;
  }
  if (expiryTimer === null) scheduleExpiry(s);
  return s;
}

/** Forgets the token; reason is 'signout', 'expired' or 'rejected'. */
export function endSession(reason) {
  const had = sessionStorage.getItem(KEY) !== null;
  sessionStorage.removeItem(KEY);
  clearTimeout(expiryTimer);
  expiryTimer = null;
  if (had || reason === 'signout') for (const fn of endListeners) fn(reason);
}

export function onSessionEnd(fn) {
  endListeners.add(fn);
}

function scheduleExpiry(session) {
  clearTimeout(expiryTimer);
  // setTimeout's delay is a signed 32-bit count of ms; longer tokens re-arm.
  const delay = Math.min(Math.max(session.expiresAt - Date.now(), 0), 2 ** 31 - 1);
  expiryTimer = setTimeout(() => {
    expiryTimer = null;
    if (Date.now() >= session.expiresAt) endSession('expired');
    else scheduleExpiry(session);
  }, delay);
}
