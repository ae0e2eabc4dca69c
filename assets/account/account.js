// The account page (SPEC 8): sign up, log in, see and end sessions, log out.
//
// It speaks the API in cookie mode: the refresh token lives in the HttpOnly
// `authgate_refresh` cookie, which this script can neither read nor write,
// and the access token lives in the variable `access` below and nowhere
// else: not in Web Storage, not in a cookie. A reload therefore
// starts with a cookie-mode reissue. The DOM is built with textContent only:
// the page's CSP enforces Trusted Types, so no HTML string ever becomes markup.

const COOKIE_MODE = 'cookie';

/** The access token: in memory only. */
let access = null;
let renewTimer = 0;
/** The one reissue in flight, shared by whoever needs a fresh token. */
let reissuing = null;

const $ = (id) => document.getElementById(id);
const view = {
  status: $('status'),
  signin: $('signin'),
  account: $('account'),
  form: $('credentials'),
  fields: $('credentials-fields'),
  email: $('email'),
  password: $('password'),
  sessions: $('sessions'),
  who: $('who'),
  whoEmail: $('who-email'),
  refresh: $('refresh'),
  logout: $('logout'),
  logoutAll: $('logout-all'),
};

/** A refused or failed API call; `status` 0 is a network error. */
class ApiFailure extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.serverMessage = message;
    this.retryAfter = retryAfter;
  }
}

async function call(method, path, { body, bearer = false, cookie = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (cookie) headers['Token-Transport'] = COOKIE_MODE;
  if (bearer && access) headers.Authorization = `Bearer ${access}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiFailure(0, 'network', '');
  }
  if (response.ok) {
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch {
      throw new ApiFailure(503, 'unavailable', '');
    }
  }
  let error = {};
  try {
    error = await response.json();
  } catch {
    // Not our JSON (a proxy's page, say): the status speaks alone.
  }
  const retryAfter = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  throw new ApiFailure(response.status, error.error ?? '', error.message ?? '', retryAfter);
}

// --- Tokens ----------------------------------------------------------------

/** Codes after which this browser's session is over: back to the form. */
const SESSION_OVER = new Set(['session_revoked', 'token_reused', 'token_expired', 'invalid_token']);

function isSessionOver(error) {
  return error instanceof ApiFailure && error.status === 401 && SESSION_OVER.has(error.code);
}

/**
 * Takes a token pair (without its refresh token, which came as a cookie) and
 * schedules its renewal a minute (a fifth of a short lifetime) before the
 * access token expires.
 */
function adopt(pair) {
  access = pair.access_token;
  clearTimeout(renewTimer);
  const lifetime = Number(pair.expires_in) || 60;
  const seconds = Math.max(1, lifetime - Math.min(60, lifetime * 0.2));
  renewTimer = setTimeout(renewInBackground, Math.min(seconds * 1000, 2 ** 31 - 1));
}

/** Serialises reissues across this origin's tabs, which share the cookie. */
function oneAtATime(task) {
  return navigator.locks ? navigator.locks.request('authgate-reissue', task) : task();
}

/**
 * A cookie-mode reissue: the cookie, the header, no body. The access token
 * is not sent beside it: if another tab has since logged in as someone
 * else, the cookie is that tab's, and a mixed pair would end its session.
 */
function renew() {
  reissuing ??= oneAtATime(() => call('POST', '/auth/reissue', { cookie: true }))
    .then(adopt)
    .finally(() => {
      reissuing = null;
    });
  return reissuing;
}

async function renewInBackground() {
  try {
    await renew();
  } catch (error) {
    if (isSessionOver(error)) {
      signedOut(describe(error), 'error');
    } else {
      say(`${describe(error)} Retrying in 30 seconds.`, 'error');
      renewTimer = setTimeout(renewInBackground, 30_000);
    }
  }
}

/** An API call with the access token, renewed once on a 401 about it. */
async function authorized(method, path, options = {}) {
  try {
    return await call(method, path, { ...options, bearer: true });
  } catch (error) {
    const stale = error.status === 401 && ['invalid_token', 'token_expired'].includes(error.code);
    if (!stale) throw error;
  }
  await renew();
  return call(method, path, { ...options, bearer: true });
}

// --- Words -----------------------------------------------------------------

function plural(n, unit) {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** Retry-After in words: "in 15 minutes". */
function inWords(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0) return 'in a moment';
  if (seconds < 60) return `in ${plural(seconds, 'second')}`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `in ${plural(minutes, 'minute')}`;
  return `in ${plural(Math.ceil(minutes / 60), 'hour')}`;
}

function sentence(text) {
  const trimmed = text.trim().replace(/\.$/, '');
  return trimmed ? `${trimmed[0].toUpperCase()}${trimmed.slice(1)}.` : '';
}

/** What went wrong, for a person (codes of SPEC 3). */
function describe(error) {
  if (!(error instanceof ApiFailure)) return 'Something went wrong on this page. Reload it and try again.';
  if (error.status === 0) return 'The server cannot be reached. Check your connection, then try again.';
  if (error.status >= 500) return 'The server is unavailable right now. Try again in a minute.';
  if (error.status === 429) {
    return `Too many failed logins for this email or from this network. Try again ${inWords(error.retryAfter)}.`;
  }
  switch (error.code) {
    case 'invalid_credentials':
      return 'Wrong email or password.';
    case 'email_taken':
      return 'An account with this email already exists. Log in with its password instead.';
    case 'session_revoked':
      return 'You were logged out: this session was ended elsewhere (on another device, or by an administrator). Log in again.';
    case 'token_reused':
      return 'You were logged out for your safety: this session’s refresh token was used twice, as happens when it was copied. Log in again.';
    case 'token_expired':
      return 'Your session has expired. Log in again.';
    case 'invalid_token':
      return 'You are not logged in any more. Log in again.';
    case 'forbidden':
      return 'The server refused a request from this page’s address.';
    case 'not_found':
      return 'That session had already ended.';
    case 'invalid_request':
      return sentence(error.serverMessage) || 'The server did not accept that request.';
    default:
      return `Something went wrong (HTTP ${error.status}). Try again.`;
  }
}

function say(text, kind = 'info') {
  view.status.textContent = text;
  view.status.classList.toggle('error', kind === 'error');
  view.status.classList.toggle('ok', kind === 'ok');
}

// --- Devices and times -----------------------------------------------------

/** "Chrome on Linux" from a User-Agent; a program's own name otherwise. */
function deviceName(ua) {
  if (!ua) return 'Unknown device';
  const browsers = [
    [/Edg(A|iOS)?\//, 'Edge'],
    [/OPR\/|Opera/, 'Opera'],
    [/SamsungBrowser\//, 'Samsung Internet'],
    [/Firefox\/|FxiOS\//, 'Firefox'],
    [/HeadlessChrome\//, 'Headless Chrome'],
    [/Chrome\/|CriOS\/|Chromium\//, 'Chrome'],
    [/Version\/[\d.]+.*Safari\//, 'Safari'],
  ];
  const systems = [
    [/Windows/, 'Windows'],
    [/iPhone|iPod/, 'iPhone'],
    [/iPad/, 'iPad'],
    [/Android/, 'Android'],
    [/CrOS/, 'ChromeOS'],
    [/Macintosh|Mac OS X/, 'macOS'],
    [/Linux/, 'Linux'],
  ];
  const find = (table) => table.find(([pattern]) => pattern.test(ua))?.[1];
  const browser = find(browsers);
  const system = find(systems);
  if (browser) return system ? `${browser} on ${system}` : browser;
  // A program: its first product token ("python-requests/2.34" → "python-requests").
  const product = ua.match(/^[A-Za-z][\w.-]{0,39}/)?.[0];
  if (!product || product === 'Mozilla') return system ? `A browser on ${system}` : 'Unknown device';
  return system ? `${product} on ${system}` : product;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

function ago(date) {
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const steps = [
    [60, 'second'],
    [3600, 'minute'],
    [86400, 'hour'],
    [604800, 'day'],
    [Infinity, 'week'],
  ];
  if (Math.abs(seconds) < 45) return 'just now';
  let unit = 1;
  for (const [limit, name] of steps) {
    if (Math.abs(seconds) < limit) return relative.format(Math.round(seconds / unit), name);
    unit = limit;
  }
  return dateTime.format(date);
}

function time(iso, text) {
  const element = document.createElement('time');
  element.dateTime = iso;
  element.title = dateTime.format(new Date(iso));
  element.textContent = text;
  return element;
}

// --- Views -----------------------------------------------------------------

function show(section) {
  view.signin.hidden = section !== view.signin;
  view.account.hidden = section !== view.account;
  view.who.hidden = section !== view.account;
}

/** Back to the form; the in-memory token is forgotten. */
function signedOut(message, kind = 'info') {
  access = null;
  clearTimeout(renewTimer);
  if (view.whoEmail.textContent) view.email.value = view.whoEmail.textContent;
  view.password.value = '';
  view.sessions.replaceChildren();
  view.whoEmail.textContent = '';
  show(view.signin);
  view.fields.disabled = false;
  say(message, kind);
}

function field(term, ...content) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.append(...content);
  return [dt, dd];
}

function sessionItem(session) {
  const item = document.createElement('li');
  item.className = session.current ? 'session current' : 'session';
  item.dataset.sessionId = session.id;
  item.dataset.current = String(session.current);

  const heading = document.createElement('p');
  heading.className = 'device';
  const name = document.createElement('strong');
  name.textContent = deviceName(session.user_agent);
  heading.append(name);
  if (session.current) {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'This browser';
    heading.append(' ', badge);
  }

  const facts = document.createElement('dl');
  facts.append(
    ...field('IP address', session.ip ?? 'unknown'),
    ...field('Logged in', time(session.created_at, dateTime.format(new Date(session.created_at)))),
    ...field('Last used', time(session.last_used_at, ago(new Date(session.last_used_at)))),
  );

  item.append(heading, facts);
  if (!session.current) {
    // This browser's own session ends with "Log out", below the list.
    const end = document.createElement('button');
    end.type = 'button';
    end.className = 'end';
    end.textContent = 'End session';
    end.setAttribute('aria-label', `End the session of ${name.textContent}, IP ${session.ip ?? 'unknown'}`);
    end.addEventListener('click', () => endSession(session, name.textContent));
    item.append(end);
  }
  return item;
}

async function loadSessions() {
  const sessions = await authorized('GET', '/auth/sessions');
  sessions.sort((a, b) => Number(b.current) - Number(a.current) || b.last_used_at.localeCompare(a.last_used_at));
  view.sessions.replaceChildren(...sessions.map(sessionItem));
  view.sessions.setAttribute('aria-busy', 'false');
}

/** Runs an action of the logged-in view, saying its failures in words. */
async function act(task) {
  const buttons = view.account.querySelectorAll('button');
  buttons.forEach((button) => { button.disabled = true; });
  try {
    await task();
  } catch (error) {
    if (isSessionOver(error)) signedOut(describe(error), 'error');
    else say(describe(error), 'error');
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

async function enterAccount(message) {
  const me = await authorized('GET', '/auth/me');
  view.whoEmail.textContent = me.email ?? '';
  await loadSessions();
  show(view.account);
  say(message, 'ok');
}

async function endSession(session, name) {
  await act(async () => {
    try {
      await authorized('DELETE', `/auth/sessions/${encodeURIComponent(session.id)}`);
      say(`The session of ${name} (IP ${session.ip ?? 'unknown'}) has ended.`, 'ok');
    } catch (error) {
      if (error.code !== 'not_found') throw error;
      say(describe(error), 'info');
    }
    await loadSessions();
  });
}

async function logout() {
  await act(async () => {
    try {
      await call('POST', '/auth/logout', { bearer: true, cookie: true });
    } catch (error) {
      // An ended session is logged out already; anything else is said.
      if (!isSessionOver(error)) throw error;
    }
    signedOut('You are logged out of this browser.', 'ok');
  });
}

async function logoutEverywhere() {
  await act(async () => {
    await authorized('POST', '/auth/logout-all', { cookie: true });
    signedOut('You are logged out everywhere: every session of your account has ended.', 'ok');
  });
}

async function submitCredentials(event) {
  event.preventDefault();
  const action = event.submitter?.value === 'signup' ? 'signup' : 'login';
  const email = view.email.value.trim();
  const password = view.password.value;
  if (!email || !password) {
    say('Enter your email and your password.', 'error');
    (email ? view.password : view.email).focus();
    return;
  }
  if (action === 'signup' && [...password].length < 8) {
    say('That password is too short: a new password needs at least 8 characters.', 'error');
    view.password.focus();
    return;
  }
  view.fields.disabled = true;
  say(action === 'signup' ? 'Creating your account…' : 'Logging in…');
  try {
    if (action === 'signup') await call('POST', '/auth/signup', { body: { email, password } });
    const pair = await call('POST', '/auth/login', { body: { email, password }, cookie: true });
    adopt(pair);
    view.password.value = '';
    await enterAccount(action === 'signup' ? 'Your account is ready and you are logged in.' : 'You are logged in.');
  } catch (error) {
    say(describe(error), 'error');
    if (error.code === 'invalid_credentials') view.password.select();
  } finally {
    view.fields.disabled = false;
  }
}

async function start() {
  view.form.addEventListener('submit', submitCredentials);
  view.refresh.addEventListener('click', () => act(async () => {
    await loadSessions();
    say('The list is up to date.', 'ok');
  }));
  view.logout.addEventListener('click', logout);
  view.logoutAll.addEventListener('click', logoutEverywhere);

  say('Checking whether you are logged in…');
  try {
    await renew();
    await enterAccount('You are logged in.');
  } catch (error) {
    if (error.status === 401 && error.code === 'invalid_token') {
      // No cookie, or one this server cannot read: simply not logged in.
      signedOut('');
    } else {
      signedOut(describe(error), 'error');
    }
  }
}

start();
