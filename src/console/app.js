// Boot and routing. The hash names the view (#/accounts/user:42, #/generations/<session>, #/health, ...); it never
// holds the token, and a shopper appears only under its hashed id.
import { ApiError, get, token } from './api.js';
import { $, note } from './dom.js';
import * as accounts from './accounts.js';
import * as generations from './generations.js';
import * as ops from './ops.js';

const views = {
  accounts: { el: $('#view-accounts'), show: accounts.show },
  generations: { el: $('#view-generations'), show: generations.show },
  health: { el: $('#view-health'), show: ops.showHealth },
  projections: { el: $('#view-projections'), show: ops.showProjections },
  'dead-letters': { el: $('#view-dead-letters'), show: ops.showDeadLetters },
};
let signedIn = false;

function route() {
  if (!signedIn) return;
  const [, name = 'accounts', ...rest] = location.hash.split('/');
  const view = views[name] ? name : 'accounts';
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : null;
  for (const [n, v] of Object.entries(views)) v.el.hidden = n !== view;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  ops.leave(view);
  const title = views[view].el.querySelector('h2');
  // focus follows the route (the view's title, or what the view says it showed) so a screen reader announces it
  Promise.resolve(views[view].show(arg)).then((shown) => (shown ?? title).focus(), (err) => {
    title.focus();
    if (err instanceof ApiError && err.status === 401) return signOut('The token was refused; enter it again.');
    console.error(err);
  });
}

/** Asks the service whether we may in: with the stored token, or none (loopback mode). */
async function probe() {
  try {
    const v = await get('/v1/admin/verify');
    return { ok: true, readModels: v.read_models };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return { ok: false, error: err };
    throw err;
  }
}

function showSignedIn() {
  signedIn = true;
  $('#token-view').hidden = true;
  $('#nav').hidden = false;
  $('#sign-out').hidden = !token.get();
  $('#session-state').textContent = token.get() ? 'Signed in with the API token (this tab only).' : 'No API_TOKEN configured: loopback access.';
  route();
}

function signOut(message = '') {
  token.clear();
  signedIn = false;
  $('#nav').hidden = true;
  for (const v of Object.values(views)) v.el.hidden = true;
  $('#sign-out').hidden = true;
  $('#session-state').textContent = '';
  $('#token-view').hidden = false;
  note($('#token-note'), message, message ? 'error' : 'info');
  $('#token-input').value = '';
  $('#token-input').focus();
}

$('#token-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  token.set($('#token-input').value.trim());
  $('#token-input').value = '';
  const r = await probe().catch((err) => ({ ok: false, error: err }));
  if (r.ok) showSignedIn();
  else signOut(r.error instanceof ApiError && r.error.status === 401 ? 'That token was refused.' : `Cannot reach the service: ${r.error.message}`);
});

$('#sign-out').addEventListener('click', () => signOut('Token forgotten.'));
addEventListener('hashchange', route);

const first = await probe().catch((err) => ({ ok: false, error: err }));
if (first.ok) showSignedIn();
else if (first.error instanceof ApiError && first.error.status === 401) signOut(token.get() ? 'The stored token was refused.' : '');
else signOut(`Cannot reach the service: ${first.error.message}`);
