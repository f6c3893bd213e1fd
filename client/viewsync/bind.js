// The DOM binding: a keyed, form-safe table of a view.
import { ViewsyncError } from './errors.js';
import { getPath, jsonEqual, setPath } from './json.js';

/**
 * bindTable renders a view into container, one row per record, keyed by id,
 * and patches rows in place. It never overwrites a control (an element with
 * data-field="path") that has focus or that the user edited and has not saved;
 * a remote change to a field being edited marks the row as conflicting. See
 * viewsync.d.ts for the options and the row life cycle.
 */
export function bindTable(view, options) {
  const {
    container, render, update, filter, onConflict, onError, onSaved,
    sort = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    read = readControl, write = writeControl, validate, keys = true,
  } = options;
  if (!container || typeof render !== 'function') throw new ViewsyncError('bad_request', 'bindTable: container and render are required');
  const doc = container.ownerDocument;
  const rows = new Map(); // id → row
  const byEl = new WeakMap(); // row element → row
  const shown = new WeakMap(); // control → value last written into it
  container.replaceChildren();

  const fieldsOf = (row) => row.el.querySelectorAll('[data-field]');
  const control = (row, f) => [...fieldsOf(row)].find((c) => c.dataset.field === f);
  const focused = (c) => doc.activeElement === c;
  const visible = (rec) => rec && (!filter || filter(rec));

  function put(c, v) {
    shown.set(c, v);
    c.classList.remove('vs-stale');
    write(c, v);
  }

  function fill(row, force) {
    const rec = row.rec;
    if (!rec) return;
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field;
      if (row.dirty.has(f)) continue;
      const v = getPath(rec.value, f);
      if (!force && shown.has(c) && jsonEqual(shown.get(c), v)) {
        c.classList.remove('vs-stale');
        continue;
      }
      if (!force && focused(c)) {
        c.classList.add('vs-stale'); // shown when it loses focus
        continue;
      }
      put(c, v);
    }
  }

  function info(row) {
    return { dirty: [...row.dirty.keys()], conflict: row.conflict, saving: row.saving };
  }

  function mark(row) {
    const { el, dirty, conflict } = row;
    el.classList.toggle('vs-dirty', dirty.size > 0);
    el.classList.toggle('vs-conflict', !!conflict);
    el.classList.toggle('vs-saving', row.saving);
    if (dirty.size) el.dataset.dirty = [...dirty.keys()].join(' ');
    else delete el.dataset.dirty;
    if (conflict) el.dataset.conflict = conflict.deleted ? 'deleted' : conflict.fields.join(' ');
    else delete el.dataset.conflict;
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field;
      c.classList.toggle('vs-dirty', dirty.has(f));
      c.classList.toggle('vs-conflict', !!conflict && (conflict.deleted || conflict.fields.includes(f)));
    }
  }

  function make(rec) {
    const out = render(rec);
    const el = out && out.nodeType === 1 ? out : cellsRow(doc, container, out?.cells || []);
    el.dataset.key = rec.id;
    const row = { id: rec.id, el, rec, last: rec, dirty: new Map(), conflict: null, saving: false };
    rows.set(rec.id, row);
    byEl.set(el, row);
    fill(row, true);
    update?.(el, rec, info(row));
    return row;
  }

  function drop(row) {
    rows.delete(row.id);
    row.el.remove();
  }

  // recheck decides whether the user's edits conflict with the record as it
  // now is: a dirty field conflicts when its remote value is no longer the
  // one the user started from (and is not what the user typed either).
  function recheck(row) {
    if (row.saving) return;
    const before = row.conflict;
    if (!row.rec) {
      row.conflict = row.dirty.size ? { deleted: true, fields: [...row.dirty.keys()], theirs: null } : null;
    } else {
      const fields = [];
      for (const [f, base] of row.dirty) {
        const remote = getPath(row.rec.value, f);
        const c = control(row, f);
        if (c && jsonEqual(remote, read(c))) {
          row.dirty.delete(f); // converged: theirs is what I typed
          shown.set(c, remote);
        } else if (!jsonEqual(remote, base)) fields.push(f);
      }
      row.conflict = fields.length ? { deleted: false, fields, theirs: row.rec } : null;
    }
    mark(row);
    if (before !== row.conflict && (before || row.conflict)) onConflict?.(row.el, row.conflict, row.rec);
  }

  function remote(id) {
    const rec = view.record(id);
    const row = rows.get(id);
    if (!visible(rec)) {
      if (!row) return false;
      if (row.dirty.size) {
        row.rec = null;
        recheck(row);
        return false;
      }
      drop(row);
      return false;
    }
    if (!row) {
      make(rec);
      return 'created';
    }
    row.rec = rec;
    row.last = rec;
    if (row.dirty.size || row.conflict) recheck(row);
    fill(row, false);
    update?.(row.el, rec, info(row));
    return 'updated';
  }

  // order puts the rows in sort order, moving as few as it simply can and
  // never the row holding focus (moving it would blur the control).
  function order() {
    const want = [...rows.values()].sort((a, b) => sort(a.rec || a.last, b.rec || b.last)).map((r) => r.el);
    const pinned = want.find((el) => el.contains(doc.activeElement)) || null;
    let cur = container.firstElementChild;
    for (const el of want) {
      if (el === pinned && cur !== pinned) {
        while (cur && cur !== pinned) {
          const next = cur.nextElementSibling;
          container.insertBefore(cur, pinned.nextSibling);
          cur = next;
        }
      }
      if (cur === el) cur = cur.nextElementSibling;
      else container.insertBefore(el, cur);
    }
  }

  function onEvent(ev) {
    let reorder = ev.type === 'reset';
    for (const id of ev.changed) {
      const r = remote(id);
      if (r === 'created' || (r === 'updated' && options.sort)) reorder = true;
    }
    if (reorder) order();
  }

  async function save(id, { keepMine = false } = {}) {
    const row = rows.get(id);
    if (!row || row.saving || row.dirty.size === 0) return undefined;
    if (row.conflict && !keepMine) {
      throw new ViewsyncError('precondition_failed', `record ${JSON.stringify(id)} changed meanwhile: keep mine or take theirs`);
    }
    const mine = new Map();
    for (const f of row.dirty.keys()) {
      const c = control(row, f);
      if (c) mine.set(f, read(c));
    }
    let value = row.rec ? row.rec.value : row.last.value;
    for (const [f, x] of mine) value = setPath(value, f, x);
    // The app's own rules: a throw stops the save and reaches onError.
    validate?.(value, id);
    // Save: the version shown. Keep mine: the version the conflict showed,
    // which the user has seen and overrides; a newer one makes the server
    // refuse (412) and the conflict shows again.
    const ifVersion = row.rec ? row.rec.version : 0;
    row.saving = true;
    mark(row);
    try {
      const v = await view.put(id, value, { ifVersion });
      row.saving = false;
      // No other write to this record can land before ours: clear what was
      // saved, keep what the user typed since.
      for (const [f, x] of mine) {
        const c = control(row, f);
        if (c && jsonEqual(read(c), x)) {
          row.dirty.delete(f);
          shown.set(c, x);
        }
      }
      const had = row.conflict;
      row.conflict = null;
      mark(row);
      if (had) onConflict?.(row.el, null, row.rec);
      onSaved?.(row.el, v);
      return v;
    } catch (e) {
      row.saving = false;
      if (e?.code === 'precondition_failed') {
        // Changed meanwhile: show the conflict; the change itself arrives
        // soon and recheck narrows it to the fields that really differ.
        row.conflict = { deleted: !row.rec, fields: [...row.dirty.keys()], theirs: row.rec };
        mark(row);
        onConflict?.(row.el, row.conflict, row.rec);
        return undefined;
      }
      mark(row);
      throw e;
    }
  }

  function takeTheirs(id) {
    const row = rows.get(id);
    if (!row) return;
    const had = row.conflict;
    row.dirty.clear();
    row.conflict = null;
    if (!row.rec) {
      drop(row);
    } else {
      fill(row, true);
      mark(row);
      update?.(row.el, row.rec, info(row));
    }
    if (had) onConflict?.(row.el, null, row.rec);
  }

  async function remove(id) {
    return view.delete(id);
  }

  function report(e, id) {
    if (onError) onError(e, id);
    else queueMicrotask(() => { throw e; });
  }

  function rowOf(target) {
    for (let el = target; el && el !== container; el = el.parentElement) {
      const row = byEl.get(el);
      if (row) return row;
    }
    return null;
  }

  const listeners = {
    input(e) {
      const c = e.target.closest?.('[data-field]');
      const row = c && rowOf(c);
      if (!row) return;
      const f = c.dataset.field;
      const base = row.dirty.has(f) ? row.dirty.get(f) : shown.has(c) ? shown.get(c) : getPath(row.last.value, f);
      if (jsonEqual(read(c), base)) row.dirty.delete(f);
      else row.dirty.set(f, base);
      recheck(row);
    },
    focusout(e) {
      const c = e.target.closest?.('[data-field]');
      const row = c && rowOf(c);
      if (row && row.rec && !row.dirty.has(c.dataset.field)) fill(row, false);
    },
    click(e) {
      const b = e.target.closest?.('[data-action]');
      const row = b && rowOf(b);
      if (!row) return;
      const act = b.dataset.action;
      if (act === 'save') save(row.id).catch((err) => report(err, row.id));
      else if (act === 'keep-mine') save(row.id, { keepMine: true }).catch((err) => report(err, row.id));
      else if (act === 'take-theirs' || act === 'discard') takeTheirs(row.id);
      else if (act === 'delete') remove(row.id).catch((err) => report(err, row.id));
      else return;
      e.preventDefault();
    },
    keydown(e) {
      if (!keys) return;
      const c = e.target.closest?.('[data-field]');
      const row = c && rowOf(c);
      if (!row) return;
      if (e.key === 'Enter' && c.tagName !== 'TEXTAREA' && !e.isComposing && row.dirty.size && !row.conflict) {
        e.preventDefault();
        save(row.id).catch((err) => report(err, row.id));
      } else if (e.key === 'Escape' && row.dirty.size) {
        e.preventDefault();
        takeTheirs(row.id);
      }
    },
  };
  for (const [t, fn] of Object.entries(listeners)) container.addEventListener(t, fn);

  for (const id of view.records.keys()) {
    const rec = view.record(id);
    if (visible(rec)) make(rec);
  }
  order();
  const unsubscribe = view.subscribe(onEvent);

  return {
    save: (id) => save(id),
    keepMine: (id) => save(id, { keepMine: true }),
    takeTheirs,
    discard: takeTheirs,
    remove,
    row: (id) => rows.get(id)?.el,
    state: (id) => { const r = rows.get(id); return r ? info(r) : undefined; },
    isDirty: (id) => (rows.get(id)?.dirty.size || 0) > 0,
    destroy() {
      unsubscribe();
      for (const [t, fn] of Object.entries(listeners)) container.removeEventListener(t, fn);
    },
  };
}

function cellsRow(doc, container, cells) {
  const table = /^(TBODY|THEAD|TFOOT|TABLE)$/.test(container.tagName);
  const el = doc.createElement(table ? 'tr' : 'div');
  for (const cell of cells) {
    const td = doc.createElement(table ? 'td' : 'div');
    if (cell && typeof cell === 'object' && cell.nodeType) td.append(cell);
    else td.textContent = cell == null ? '' : String(cell);
    el.append(td);
  }
  return el;
}

const isControl = (c) => /^(INPUT|TEXTAREA|SELECT)$/.test(c.tagName);

/** readControl reads a control's value as JSON: checkbox → boolean, number → number (empty → null), else string. */
export function readControl(c) {
  if (!isControl(c)) return c.textContent;
  if (c.type === 'checkbox') return c.checked;
  if (c.type === 'number' || c.dataset.type === 'number') {
    if (c.value.trim() === '') return null;
    const n = Number(c.value);
    return Number.isFinite(n) ? n : c.value;
  }
  return c.value;
}

/** writeControl shows a JSON value in a control, or as the text of any other element. */
export function writeControl(c, v) {
  const s = v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (c.type === 'checkbox') c.checked = !!v;
  else if (isControl(c)) { if (c.value !== s) c.value = s; }
  else c.textContent = s;
}
