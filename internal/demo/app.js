// The products demo: a grid bound to the collection "products" — all of it,
// or the filtered view of one category — a log of the sync references as
// they arrive, a connection badge, a server call, and an undo for the last
// delete. Data only ever reaches the page through textContent and input
// values.
import { connect, bindTable } from '/viewsync.js';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const TRANSPORTS = ['ws', 'sse', 'ndjson', 'longpoll', 'poll'];
const LABELS = { ws: 'WebSocket', sse: 'SSE', ndjson: 'NDJSON', longpoll: 'long-poll', poll: 'poll' };
const MAX_LOG = 100;
// A product's category is one of these (or none: "").
const CATEGORIES = [
  { value: 'lighting', label: 'Lighting' },
  { value: 'furniture', label: 'Furniture' },
  { value: 'kitchen', label: 'Kitchen' },
];
const categoryLabel = (c) => CATEGORIES.find((x) => x.value === c)?.label || '';

const params = new URLSearchParams(location.search);
const wanted = params.get('transport');
const asked = params.get('category');
// On a server that requires tokens, open the demo as /#token=… (from
// `viewsync token`); the fragment never reaches the server or its logs.
const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
// Each window is someone, for presence: ?name=…, or a name it keeps for
// the tab's life. The others see "Ana is editing" on the row it edits.
const NAMES = ['Ana', 'Ben', 'Chloé', 'Dev', 'Eli', 'Femi', 'Gus', 'Hana'];
const me = params.get('name') || sessionStorage.getItem('viewsync-demo-name')
  || NAMES[Math.floor(Math.random() * NAMES.length)];
sessionStorage.setItem('viewsync-demo-name', me);
// Offline-first: the grid is kept in this browser and shows at once on
// the next visit, also without a network; edits made offline wait in an
// outbox, shown pending, and go when the server is back. ?persist=0
// turns it off (a page that only follows the server).
const session = connect({
  transport: TRANSPORTS.includes(wanted) ? wanted : 'auto',
  token: () => new URLSearchParams(location.hash.slice(1)).get('token') || token,
  persist: params.get('persist') === '0' ? false : { version: 'demo-1' },
});

// --- where writes go ------------------------------------------------------------

// The server says how the page writes (the call "demo.config"): to the
// collection itself, or — when the products are kept in a source such as
// a PostgreSQL table, which clients cannot write — through the demo's
// calls, which write to the table and resolve once the view includes the
// write, with the same preconditions (ifVersion; 0: the product must not
// exist). A server without the call gets direct writes.
const config = session.call('demo.config').then(({ result }) => result || {}, () => ({}));

// direct is true once the page knows it writes to the collection itself.
let direct = false;
config.then((c) => { direct = c.writes !== 'calls'; });

// putProduct writes a product at ifVersion and resolves the version that
// includes it. A direct write is the view's own promise, which with the
// outbox also tells when the write is queued (queued).
function putProduct(view, id, value, ifVersion) {
  if (direct) return view.put(id, value, { ifVersion });
  return (async () => {
    if ((await config).writes !== 'calls') return view.put(id, value, { ifVersion });
    const { result } = await session.call('products.put', { id, value, ifVersion });
    return result.version;
  })();
}

// deleteProduct deletes a product at ifVersion.
function deleteProduct(view, id, ifVersion) {
  if (direct) return view.delete(id, { ifVersion });
  return (async () => {
    if ((await config).writes !== 'calls') return view.delete(id, { ifVersion });
    const { result } = await session.call('products.delete', { id, ifVersion });
    return result.version;
  })();
}

const sourceNote = $('source-note');
config.then(({ source }) => {
  if (!source) return;
  sourceNote.textContent = `Kept in ${source}: edits go through server calls.`;
  sourceNote.hidden = false;
});

// --- connection badge -------------------------------------------------------

const badge = $('status-badge');
function showStatus({ state, transport }) {
  badge.textContent = `${LABELS[transport] || transport} · ${state}`;
  badge.dataset.state = state;
  badge.dataset.transport = transport;
}
showStatus(session.status);
session.on('status', showStatus);

// What the page shows and has to send: a copy kept offline, pending edits.
const syncNote = $('sync-status');
function showSync({ state, pending }) {
  const n = pending ? ` · ${pending} pending` : '';
  const text = {
    live: 'All changes saved',
    syncing: `Syncing${n}`,
    cached: 'Showing the copy kept offline',
    offline: `Offline${n}`,
  }[state] || '';
  syncNote.textContent = text;
  syncNote.hidden = !text;
  syncNote.dataset.state = state;
  syncNote.dataset.pending = String(pending);
}
showSync(session.sync);
session.on('sync', showSync);

const transportLinks = [...$('transport-links').querySelectorAll('a')];
for (const a of transportLinks) {
  const t = new URLSearchParams(a.search).get('transport') || '';
  a.dataset.transport = t;
  if (t === wanted || (!t && !TRANSPORTS.includes(wanted))) a.setAttribute('aria-current', 'page');
}

// linkTransports points the transport links at this page with the
// category shown, and the token (kept in the fragment) if there is one.
function linkTransports(category) {
  for (const a of transportLinks) {
    const q = new URLSearchParams();
    if (a.dataset.transport) q.set('transport', a.dataset.transport);
    if (category) q.set('category', category);
    a.search = q.toString();
    if (token) a.hash = location.hash;
  }
}

// --- errors -------------------------------------------------------------------

const banner = $('error-banner');
let bannerTimer = 0;
function showError(err) {
  const what = err && err.code ? `${err.code}: ${err.message}` : String(err);
  banner.textContent = what;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { banner.hidden = true; }, 8000);
}
session.on('error', (err) => {
  if (err.status === 401 || err.status === 403) showError(err);
});

// --- categories ---------------------------------------------------------------

const template = document.getElementById('product-row');
const addCategory = $('add-category');
const filterBar = $('category-filter');
for (const { value, label } of CATEGORIES) {
  addCategory.append(new Option(label, value));
  template.content.querySelector('[data-field="category"]').append(new Option(label, value));
  const b = document.createElement('button');
  b.type = 'button';
  b.value = value;
  b.textContent = label;
  b.setAttribute('aria-pressed', 'false');
  filterBar.append(b);
}

// --- the grid -----------------------------------------------------------------

// phone is the layout of narrow screens, where products are cards.
const phone = matchMedia('(max-width: 760px)');

function formatPrice(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(2) : v == null ? '' : String(v);
}

const grid = {
  container: $('product-list'),
  render(rec) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.id = rec.id;
    return el;
  },
  update(el, rec) {
    el.querySelector('.ref').textContent = `ref ${rec.version}`;
  },
  // Prices are kept to cents (an unreadable price stays text, for validate).
  read(control) {
    if (control.dataset.field !== 'price') return control.value;
    const price = Number(control.value);
    if (control.value.trim() === '' || !Number.isFinite(price)) return control.value;
    return Math.round(price * 100) / 100;
  },
  // A saved product needs a name and a price of 0 or more, as the add form
  // requires, and a category that is text if any; anything else stops the
  // save with an error.
  validate(value) {
    if (!value || typeof value.name !== 'string' || value.name.trim() === '') {
      throw new Error('A product needs a name.');
    }
    if (typeof value.price !== 'number' || value.price < 0) {
      throw new Error('A price must be a number of 0 or more.');
    }
    if (value.category !== undefined && typeof value.category !== 'string') {
      throw new Error('A category must be text.');
    }
  },
  // Prices show with cents; everything else as text. A category the list
  // does not know gets a choice of its own, so that it shows as it is.
  write(control, value) {
    const s = control.dataset.field === 'price' ? formatPrice(value) : value == null ? '' : String(value);
    if (control.tagName === 'SELECT' && ![...control.options].some((o) => o.value === s)) {
      control.append(new Option(s, s));
    }
    if (control.value !== s) control.value = s;
  },
  onConflict(el, conflict) {
    const text = el.querySelector('.conflict-text');
    if (!conflict) {
      text.textContent = '';
    } else if (conflict.deleted) {
      text.textContent = 'Someone else removed this product.';
    } else if (!conflict.theirs) {
      text.textContent = 'Someone else changed this product.';
    } else {
      const parts = conflict.fields.map((f) => {
        const v = conflict.theirs.value ? conflict.theirs.value[f] : undefined;
        return `${f} is now “${short(f === 'price' ? formatPrice(v) : v == null ? '' : String(v))}”`;
      });
      text.textContent = `Changed by someone else: ${parts.join(', ')}.`;
    }
    // On a phone the row may be out of sight (the user scrolled away while
    // editing it): bring it into view, so that its choice is seen.
    if (conflict && phone.matches) el.scrollIntoView({ block: 'nearest' });
  },
  onError: showError,
};

const empty = $('empty');
function showEmpty() {
  const { view } = current;
  empty.hidden = !view.synced || view.records.size > 0;
}

// --- sync references ------------------------------------------------------------

const log = $('sync-log');
const names = new Map(); // id → name, to name what a delete removed

function short(s, n = 40) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function label(id, value) {
  const name = value && typeof value.name === 'string' && value.name.trim() ? value.name : names.get(id);
  return name ? `“${short(name)}”` : short(id, 24);
}

// ago says how long ago a time was, in words.
function ago(at, now = Date.now()) {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  return `${Math.floor(m / 60)} h ago`;
}

// entry makes one line of the log: what changed — subject (a product's
// name, or none) and text — above when and its sync reference. Its class
// is its kind (added, updated, removed, catchup or reset), which gives it
// its icon and colour. The lines of one change are added together, newest
// change on top, each change's lines in op order.
function entry(version, subject, text, kind) {
  const li = document.createElement('li');
  li.dataset.testid = 'sync-entry';
  li.dataset.version = String(version);
  li.className = kind;
  const what = document.createElement('span');
  what.className = 'what';
  if (subject) {
    const name = document.createElement('strong');
    name.textContent = subject;
    what.append(name, ` ${text}`);
  } else {
    what.textContent = text;
  }
  const meta = document.createElement('span');
  meta.className = 'meta';
  const at = Date.now();
  const time = document.createElement('time');
  time.dateTime = new Date(at).toISOString();
  time.dataset.at = String(at);
  time.title = new Date(at).toLocaleTimeString();
  time.textContent = ago(at);
  const ref = document.createElement('span');
  ref.className = 'ref';
  ref.textContent = `ref ${version}`;
  meta.append(time, ' · ', ref);
  li.append(what, meta);
  return li;
}

// The log's times say how long ago; they age as the page stays open.
setInterval(() => {
  const now = Date.now();
  for (const t of log.querySelectorAll('time[data-at]')) {
    const s = ago(Number(t.dataset.at), now);
    if (t.textContent !== s) t.textContent = s;
  }
}, 10000);

// logChange adds the lines of one change of the view shown. In a
// category's view a product that starts matching arrives as added, one
// that stops matching as removed, as a deleted one does: the log says it
// came to the category or left it.
function logChange(view, category, ev) {
  const added = new Set(ev.added);
  const where = categoryLabel(category);
  const lines = [];
  if (ev.type === 'commit') {
    if (ev.ops.length > 3) {
      lines.push(entry(ev.version, '', `${ev.ops.length} products changed in one commit`, 'updated'));
    } else {
      for (const op of ev.ops) {
        const verb = op.op === 'delete' ? 'removed' : added.has(op.id) ? 'added' : 'updated';
        let text = verb;
        if (where && verb === 'added') text = `now in ${where}`;
        if (where && verb === 'removed') text = `no longer in ${where}`;
        lines.push(entry(ev.version, label(op.id, op.value), text, verb));
      }
    }
  } else if (ev.type === 'pending') {
    // Edits waiting to be sent: they show in the grid, the log has what the server took.
  } else if (ev.type === 'catchup') {
    lines.push(entry(ev.version, '', `caught up: ${ev.records.length} changed, ${ev.deleted.length} removed`, 'catchup'));
  } else {
    const n = ev.records.length;
    lines.push(entry(ev.version, '', `snapshot of ${n} ${where ? `${where.toLowerCase()} ` : ''}product${n === 1 ? '' : 's'}`, 'reset'));
  }
  log.prepend(...lines);
  while (log.childElementCount > MAX_LOG) log.lastElementChild.remove();
  for (const id of ev.removed) names.delete(id);
  for (const id of [...ev.added, ...ev.updated]) {
    const v = view.get(id);
    if (v && typeof v.name === 'string') names.set(id, v.name);
  }
  showEmpty();
}

// --- the category shown -------------------------------------------------------

// current is what the grid shows: the category ("" for all), its view, the
// grid's binding of it and the log's subscription to it.
let current = null;

// show switches the grid to category ("" for every product): it opens that
// view, binds the grid and the log to it and lets the previous view go, so
// that its subscription ends. The choice goes into the URL (?category=),
// which a reload starts from.
function show(category) {
  if (current && current.category === category) return;
  if (current) {
    current.unsubscribe();
    current.binding.destroy();
    current.view.close();
  }
  const view = category
    ? session.collection('products', { where: { category } })
    : session.collection('products');
  log.replaceChildren();
  names.clear();
  current = {
    category,
    view,
    binding: bindTable(view, { ...grid, presence: { name: me }, put: (id, value, { ifVersion }) => putProduct(view, id, value, ifVersion) }),
    unsubscribe: view.subscribe((ev) => logChange(view, category, ev)),
  };
  view.ready.then(() => { if (current.view === view) showEmpty(); }, () => {});
  showEmpty();

  const where = categoryLabel(category);
  empty.textContent = where ? `No ${where.toLowerCase()} products — add one above.` : 'No products yet — add one above.';
  for (const b of filterBar.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.value === category));
  if (category) addCategory.value = category;
  const url = new URL(location.href);
  if (category) url.searchParams.set('category', category);
  else url.searchParams.delete('category');
  if (url.href !== location.href) history.replaceState(history.state, '', url);
  linkTransports(category);
}

filterBar.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (b && filterBar.contains(b)) show(b.value);
});

show(CATEGORIES.some((c) => c.value === asked) ? asked : '');

// --- add ------------------------------------------------------------------------

const form = $('add-form');

function newId() {
  // Time first, so that ids sort in the order products were added.
  const rnd = crypto.getRandomValues(new Uint32Array(1))[0].toString(36).padStart(7, '0');
  return `p-${Date.now().toString(36)}-${rnd}`;
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const field = (n) => form.elements.namedItem(n);
  const name = field('name').value.trim();
  const description = field('description').value.trim();
  const price = Number(field('price').value);
  const category = field('category').value;
  if (!name || !Number.isFinite(price) || price < 0) {
    showError('Give the product a name and a price of 0 or more.');
    return;
  }
  const submit = $('add-submit');
  submit.disabled = true;
  try {
    const value = { name, description, price: Math.round(price * 100) / 100 };
    if (category) value.category = category;
    // With the outbox, the product is added once queued: it shows at once
    // (pending) and goes when connected; a refusal then is shown.
    await config;
    const p = putProduct(current.view, newId(), value, 0);
    if (p.queued) p.catch(showError);
    await (p.queued ?? p);
    form.reset();
    if (current.category) addCategory.value = current.category;
    field('name').focus();
  } catch (err) {
    showError(err);
  } finally {
    submit.disabled = false;
  }
});

// --- delete, and its undo ------------------------------------------------------

// A product is deleted at the version its row shows, so that what the undo
// puts back is what was deleted; the toast offers the undo for UNDO_MS.
const UNDO_MS = 6000;
const toast = $('undo-toast');
const toastText = $('undo-text');
const undoButton = $('undo-delete');
let undoable = null; // { id, value } of the product last deleted, while the toast shows
let toastTimer = 0;

function hideToast() {
  clearTimeout(toastTimer);
  toast.hidden = true;
  undoable = null;
}

function offerUndo(id, value) {
  undoable = { id, value };
  toastText.textContent = `Deleted ${label(id, value)}`;
  undoButton.disabled = false;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, UNDO_MS);
}

// The toast stays while the pointer or the focus is on it.
toast.addEventListener('pointerenter', () => clearTimeout(toastTimer));
toast.addEventListener('focusin', () => clearTimeout(toastTimer));
for (const type of ['pointerleave', 'focusout']) {
  toast.addEventListener(type, () => {
    if (!undoable || toast.matches(':hover, :focus-within')) return;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(hideToast, UNDO_MS);
  });
}

$('product-list').addEventListener('click', async (e) => {
  const b = e.target.closest('[data-testid="product-delete"]');
  const id = b?.closest('[data-testid="product-row"]')?.dataset.key;
  const view = current.view;
  const rec = id && view.record(id);
  if (!rec) return;
  e.preventDefault();
  b.disabled = true;
  try {
    await config;
    const p = deleteProduct(view, id, rec.version);
    if (p.queued) p.catch((err) => showError(err?.code === 'precondition_failed' ? `${label(id, rec.value)} was changed by someone else meanwhile, so it was not removed.` : err));
    await (p.queued ?? p);
    offerUndo(id, rec.value);
  } catch (err) {
    if (err?.code === 'precondition_failed') {
      showError(`${label(id, rec.value)} was changed by someone else meanwhile, so it was not removed.`);
    } else {
      showError(err);
    }
  } finally {
    b.disabled = false;
  }
});

// Undo puts the product back as it was, only if no product has its id
// again (ifVersion 0: If-None-Match: *), so that it never overwrites one
// re-created meanwhile.
undoButton.addEventListener('click', async () => {
  const u = undoable;
  if (!u) return;
  undoButton.disabled = true;
  clearTimeout(toastTimer);
  try {
    await putProduct(current.view, u.id, u.value, 0);
  } catch (err) {
    if (err?.code === 'precondition_failed') {
      showError(`${label(u.id, u.value)} was not restored: a product with its id exists again.`);
    } else {
      showError(err);
    }
  } finally {
    if (undoable === u) hideToast();
  }
});

// --- the server call ------------------------------------------------------------

const discountButton = $('discount-button');
const result = $('discount-result');

discountButton.addEventListener('click', async () => {
  discountButton.disabled = true;
  result.textContent = 'Applying…';
  delete result.dataset.updated;
  try {
    // Resolves only once the grid includes the call's commit.
    const { result: r, context } = await session.call('discount', { percent: 10 }, { started: performance.now() });
    const ms = Math.round(performance.now() - context.started);
    result.textContent = `${r.updated} product${r.updated === 1 ? '' : 's'} discounted, shown after ${ms} ms`;
    result.dataset.updated = String(r.updated);
  } catch (err) {
    result.textContent = '';
    // closed: the grid switched category meanwhile; the call's commit
    // shows in the new view's snapshot.
    if (err?.code !== 'closed') showError(err);
  } finally {
    discountButton.disabled = false;
  }
});

// For tests and the curious: the session, how the page writes (config),
// and what the grid shows now — the category ("" for all), its view
// (products, too) and the binding.
globalThis.viewsyncDemo = {
  session,
  config,
  show,
  get category() { return current.category; },
  get view() { return current.view; },
  get products() { return current.view; },
  get binding() { return current.binding; },
};
