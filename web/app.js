// Entry point: a small client-side router over the History API, the account
// bar, and session-end handling. Pages live in pages.js.

import { currentSession, endSession, onSessionEnd } from './auth.js';
import { announce } from './dom.js';
import { startLive, stopLive } from './live.js';
import { groupPage, groupsPage, newPage, notFoundPage, refreshTimes, signinPage } from './pages.js';

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const routes = [
  { re: /^\/signin$/, page: signinPage, public: true },
  { re: /^\/$/, redirect: '/messages' },
  { re: /^\/messages$/, page: groupsPage },
  { re: /^\/messages\/new\/([A-Za-z0-9_]{1,32})$/, page: newPage },
  { re: new RegExp(`^/messages/(${UUID})$`), page: groupPage },
];

let controller = null; // aborts the previous page's requests on navigation
let notice = '';       // shown once on the sign-in page
let firstRender = true;

export function navigate(path, { replace = false, state = {} } = {}) {
  if (replace) history.replaceState(state, '', path);
  else history.pushState(state, '', path);
  render();
}

function updateAccount() {
  const s = currentSession();
  document.getElementById('account').hidden = !s;
  document.getElementById('me').textContent = s ? `@${s.handle}` : '';
}

let renderGen = 0;

function render() {
  const gen = ++renderGen;
  // Reading the session may end an expired one, which navigates (and renders)
  // from inside this call: then this render is stale and stops here.
  const session = currentSession();
  if (gen !== renderGen) return;
  controller?.abort();
  controller = new AbortController();
  const path = location.pathname;
  const route = routes.find((r) => r.re.test(path));
  const main = document.getElementById('main');
  updateAccount();
  if (route?.redirect) return navigate(route.redirect, { replace: true });
  if (route && !route.public && !session) {
    sessionStorage.setItem('cruddur.next', path);
    return navigate('/signin', { replace: true });
  }
  if (route?.page === signinPage && session) return navigate('/messages', { replace: true });

  const ctx = {
    params: route ? path.match(route.re).slice(1) : [],
    signal: controller.signal,
    state: history.state || {},
    notice,
    navigate,
  };
  notice = '';
  if (session) startLive(); // one event stream per tab while signed in
  (route ? route.page : notFoundPage)(main, ctx);

  // Focus: the page's chosen field, else its heading, so keyboard and screen
  // reader users start at the new content. The first load keeps the browser's
  // default unless the page asks for a field.
  const target = main.querySelector('[data-autofocus]') || (firstRender ? null : main.querySelector('h1'));
  target?.focus();
  firstRender = false;
}

onSessionEnd((reason) => {
  stopLive();
  if (reason === 'signout') {
    notice = 'You have signed out.';
    sessionStorage.removeItem('cruddur.next');
  } else {
    notice = 'Your session has ended. Sign in again.';
    if (location.pathname.startsWith('/messages')) sessionStorage.setItem('cruddur.next', location.pathname);
  }
  announce(notice);
  navigate('/signin', { replace: true });
});

document.getElementById('signout').addEventListener('click', () => endSession('signout'));

// Same-origin links change the page without a reload.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  if (url.hash && url.pathname === location.pathname) return; // in-page anchors, the skip link
  e.preventDefault();
  if (url.pathname !== location.pathname) navigate(url.pathname + url.search);
});

window.addEventListener('popstate', render);
setInterval(() => refreshTimes(), 60_000);
render();
