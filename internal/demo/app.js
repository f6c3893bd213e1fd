// The products demo: a grid bound to the collection "products", a log of the
// sync references as they arrive, a connection badge and a server call.
// Data only ever reaches the page through textContent and input values.
import { connect, bindTable } from '/viewsync.js';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const TRANSPORTS = ['ws', 'sse', 'ndjson', 'longpoll', 'poll'];
const LABELS = { ws: 'WebSocket', sse: 'SSE', ndjson: 'NDJSON', longpoll: 'long-poll', poll: 'poll' };
const MAX_LOG = 100;

const wanted = new URLSearchParams(location.search).get('transport');
// On a server that requires tokens, open the demo as /#token=… (from
// `viewsync token`); the fragment never reaches the server or its logs.
const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
const session = connect({
  transport: TRANSPORTS.includes(wanted) ? wanted : 'auto',
  collections: ['products'],
  token: () => new URLSearchParams(location.hash.slice(1)).get('token') || token,
});
const products = session.collection('products');

// --- connection badge -------------------------------------------------------

const badge = $('status-badge');
function showStatus({ state, transport }) {
  badge.textContent = `${LABELS[transport] || transport} · ${state}`;
  badge.dataset.state = state;
  badge.dataset.transport = transport;
}
showStatus(session.status);
session.on('status', showStatus);

for (const a of $('transport-links').querySelectorAll('a')) {
  const t = new URLSearchParams(a.search).get('transport');
  if (t === wanted || (!t && !TRANSPORTS.includes(wanted))) a.setAttribute('aria-current', 'page');
  if (token) a.hash = location.hash; // keep the token across transports
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

// --- the grid -----------------------------------------------------------------

const template = document.getElementById('product-row');

function formatPrice(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(2) : v == null ? '' : String(v);
}

const binding = bindTable(products, {
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
  // requires; anything else stops the save with an error.
  validate(value) {
    if (!value || typeof value.name !== 'string' || value.name.trim() === '') {
      throw new Error('A product needs a name.');
    }
    if (typeof value.price !== 'number' || value.price < 0) {
      throw new Error('A price must be a number of 0 or more.');
    }
  },
  // Prices show with cents; everything else as text.
  write(control, value) {
    const s = control.dataset.field === 'price' ? formatPrice(value) : value == null ? '' : String(value);
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
  },
  onError: showError,
});

const empty = $('empty');
function showEmpty() {
  empty.hidden = !products.synced || products.records.size > 0;
}
products.ready.then(showEmpty, () => {});

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

// entry makes one line of the log; the lines of one change are added
// together, newest change on top, each change's lines in op order.
function entry(version, text, kind) {
  const li = document.createElement('li');
  li.dataset.testid = 'sync-entry';
  li.dataset.version = String(version);
  li.className = kind;
  const ref = document.createElement('span');
  ref.className = 'ref';
  ref.textContent = `ref ${version}`;
  const what = document.createElement('span');
  what.textContent = ` · ${text}`;
  li.append(ref, what);
  return li;
}

products.subscribe((ev) => {
  const added = new Set(ev.added);
  const lines = [];
  if (ev.type === 'commit') {
    if (ev.ops.length > 3) {
      lines.push(entry(ev.version, `${ev.ops.length} products changed in one commit`, 'updated'));
    } else {
      for (const op of ev.ops) {
        const verb = op.op === 'delete' ? 'removed' : added.has(op.id) ? 'added' : 'updated';
        lines.push(entry(ev.version, `product ${label(op.id, op.value)} ${verb}`, verb));
      }
    }
  } else if (ev.type === 'catchup') {
    lines.push(entry(ev.version, `caught up: ${ev.records.length} changed, ${ev.deleted.length} removed`, 'catchup'));
  } else {
    lines.push(entry(ev.version, `snapshot of ${ev.records.length} product${ev.records.length === 1 ? '' : 's'}`, 'reset'));
  }
  log.prepend(...lines);
  while (log.childElementCount > MAX_LOG) log.lastElementChild.remove();
  for (const id of ev.removed) names.delete(id);
  for (const id of [...ev.added, ...ev.updated]) {
    const v = products.get(id);
    if (v && typeof v.name === 'string') names.set(id, v.name);
  }
  showEmpty();
});

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
  if (!name || !Number.isFinite(price) || price < 0) {
    showError('Give the product a name and a price of 0 or more.');
    return;
  }
  const submit = $('add-submit');
  submit.disabled = true;
  try {
    await products.put(newId(), { name, description, price: Math.round(price * 100) / 100 }, { ifVersion: 0 });
    form.reset();
    field('name').focus();
  } catch (err) {
    showError(err);
  } finally {
    submit.disabled = false;
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
    showError(err);
  } finally {
    discountButton.disabled = false;
  }
});

// For tests and the curious.
globalThis.viewsyncDemo = { session, products, binding };
