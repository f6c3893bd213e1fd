// The DOM binding: a keyed, form-safe table of a view.
import { ViewsyncError } from './errors.js';
import { getPath, jsonEqual, mergePatch, setPath } from './json.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 */

/**
 * One row of a binding.
 * @template T
 * @typedef {object} Row
 * @property {string} id
 * @property {HTMLElement} el
 * @property {import('../viewsync.js').RecordOf<T> | null} rec the record as it is; null once deleted remotely while edited
 * @property {import('../viewsync.js').RecordOf<T>} last the record as last seen
 * @property {Map<string, JSONValue | undefined>} dirty edited field → its value when the edit began
 * @property {import('../viewsync.js').Conflict<T> | null} conflict
 * @property {boolean} saving
 */

/**
 * bindTable renders a view into container, one row per record, keyed by id,
 * and patches rows in place. It never overwrites a control (an element with
 * data-field="path") that has focus or that the user edited and has not saved;
 * a remote change to a field being edited marks the row as conflicting. See
 * viewsync.d.ts for the options and the row life cycle.
 * @template [T=JSONValue]
 * @param {import('../viewsync.js').View<T>} view
 * @param {import('../viewsync.js').BindTableOptions<T>} options
 * @returns {import('../viewsync.js').Binding<T>}
 */
export function bindTable(view, options) {
  const {
    container, render, update, filter, onConflict, onError, onSaved,
    put: saveRecord = (id, value, opts) => view.put(id, value, opts),
    sort = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    read = readControl, write = writeControl, validate, keys = true,
    presence: presenceState,
  } = options;
  if (!container || typeof render !== 'function') throw new ViewsyncError('bad_request', 'bindTable: container and render are required');
  const doc = container.ownerDocument;
  /** @typedef {import('../viewsync.js').RecordOf<T>} Rec */
  /** @type {Map<string, Row<T>>} id → row */
  const rows = new Map();
  /** @type {WeakMap<Element, Row<T>>} row element → row */
  const byEl = new WeakMap();
  /** @type {WeakMap<Element, JSONValue | undefined>} control → value last written into it */
  const shown = new WeakMap();
  container.replaceChildren();

  /** @param {Row<T>} row */
  const fieldsOf = (row) => /** @type {NodeListOf<HTMLElement>} */ (row.el.querySelectorAll('[data-field]'));
  /** @param {Row<T>} row @param {string} f */
  const control = (row, f) => [...fieldsOf(row)].find((c) => c.dataset.field === f);
  /** @param {Element} c */
  const focused = (c) => doc.activeElement === c;
  /**
   * @param {Rec | undefined} rec
   * @returns {rec is Rec}
   */
  const visible = (rec) => !!rec && (!filter || filter(rec));

  /** @param {HTMLElement} c @param {JSONValue | undefined} v */
  function put(c, v) {
    shown.set(c, v);
    c.classList.remove('vs-stale');
    write(c, v);
  }

  /** @param {Row<T>} row @param {boolean} force also over a control with focus or an equal value */
  function fill(row, force) {
    const rec = row.rec;
    if (!rec) return;
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field || '';
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

  /**
   * @param {Row<T>} row
   * @returns {import('../viewsync.js').RowState<T>}
   */
  function info(row) {
    return { dirty: [...row.dirty.keys()], conflict: row.conflict, saving: row.saving };
  }

  /** @param {Row<T>} row */
  function mark(row) {
    const { el, dirty, conflict } = row;
    el.classList.toggle('vs-dirty', dirty.size > 0);
    el.classList.toggle('vs-conflict', !!conflict);
    el.classList.toggle('vs-saving', row.saving);
    el.classList.toggle('vs-pending', !!row.rec?.pending);
    if (dirty.size) el.dataset.dirty = [...dirty.keys()].join(' ');
    else delete el.dataset.dirty;
    if (conflict) el.dataset.conflict = conflict.deleted ? 'deleted' : conflict.fields.join(' ');
    else delete el.dataset.conflict;
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field || '';
      c.classList.toggle('vs-dirty', dirty.has(f));
      c.classList.toggle('vs-conflict', !!conflict && (conflict.deleted || conflict.fields.includes(f)));
    }
  }

  /** @param {Rec} rec */
  function make(rec) {
    const out = render(rec);
    const el = /** @type {HTMLElement} */ ('nodeType' in out && out.nodeType === 1 ? out : cellsRow(doc, container, 'cells' in out ? out.cells : []));
    el.dataset.key = rec.id;
    /** @type {Row<T>} */
    const row = { id: rec.id, el, rec, last: rec, dirty: new Map(), conflict: null, saving: false };
    rows.set(rec.id, row);
    byEl.set(el, row);
    fill(row, true);
    showEditors(row);
    mark(row);
    update?.(el, rec, info(row));
    return row;
  }

  // Presence: who else is on each row (data-editing, vs-editing).
  const pres = presenceState ? view.presence : null;
  /** @type {string | null} the record this client is on */
  let here = null;
  /** @returns {Map<string, string[]>} record → the names of the others on it */
  function editors() {
    const by = new Map();
    for (const m of pres ? pres.others() : []) {
      if (m.record == null) continue;
      const name = (typeof m.state.name === 'string' && m.state.name) || 'someone';
      by.set(m.record, [...(by.get(m.record) || []), name]);
    }
    return by;
  }
  /** @param {Row<T>} row @param {Map<string, string[]>} [by] */
  function showEditors(row, by = editors()) {
    if (!pres) return;
    const names = by.get(row.id) || [];
    row.el.classList.toggle('vs-editing', names.length > 0);
    if (names.length) row.el.dataset.editing = names.join(', ');
    else delete row.el.dataset.editing;
  }
  /** @param {string | null} id the record this client is now on */
  function goTo(id) {
    if (!pres || id === here) return;
    here = id;
    const st = /** @type {Record<string, JSONValue>} */ (presenceState);
    const p = id === null ? pres.set(st) : pres.set({ ...st, editing: id }, { record: id });
    p.catch(() => { /* not connected yet: sent at the next sync */ });
  }

  /** @param {Row<T>} row */
  function drop(row) {
    rows.delete(row.id);
    row.el.remove();
  }

  // recheck decides whether the user's edits conflict with the record as it
  // now is: a dirty field conflicts when its remote value is no longer the
  // one the user started from (and is not what the user typed either).
  /** @param {Row<T>} row */
  function recheck(row) {
    if (row.saving) return;
    const before = row.conflict;
    if (!row.rec) {
      row.conflict = row.dirty.size ? { deleted: true, fields: [...row.dirty.keys()], theirs: null } : null;
    } else {
      /** @type {string[]} */
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

  /**
   * remote shows the record id as it now is; says what became of its row.
   * @param {string} id
   * @returns {false | 'created' | 'updated'}
   */
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
    else mark(row);
    fill(row, false);
    update?.(row.el, rec, info(row));
    return 'updated';
  }

  // order puts the rows in sort order, moving as few as it simply can and
  // never the row holding focus (moving it would blur the control).
  function order() {
    const want = [...rows.values()].sort((a, b) => sort(a.rec || a.last, b.rec || b.last)).map((r) => r.el);
    const pinned = want.find((el) => el.contains(doc.activeElement)) || null;
    /** @type {Element | null} */
    let cur = container.firstElementChild;
    for (const el of want) {
      if (el === pinned && cur !== pinned) {
        while (cur && cur !== pinned) {
          const next = cur.nextElementSibling;
          container.insertBefore(cur, /** @type {Element} */ (pinned).nextSibling);
          cur = next;
        }
      }
      if (cur === el) cur = cur.nextElementSibling;
      else container.insertBefore(el, cur);
    }
  }

  /** @param {import('../viewsync.js').Change<T>} ev */
  function onEvent(ev) {
    let reorder = ev.type === 'reset';
    for (const id of ev.changed) {
      const r = remote(id);
      if (r === 'created' || (r === 'updated' && options.sort)) reorder = true;
    }
    if (reorder) order();
  }

  /**
   * @param {string} id
   * @param {{keepMine?: boolean}} [how]
   * @returns {Promise<number | undefined>}
   */
  async function save(id, { keepMine = false } = {}) {
    const row = rows.get(id);
    if (!row || row.saving || row.dirty.size === 0) return undefined;
    if (row.conflict && !keepMine) {
      throw new ViewsyncError('precondition_failed', `record ${JSON.stringify(id)} changed meanwhile: keep mine or take theirs`);
    }
    /** @type {Map<string, JSONValue>} */
    const mine = new Map();
    for (const f of row.dirty.keys()) {
      const c = control(row, f);
      if (c) mine.set(f, read(c));
    }
    /** @type {JSONValue} */
    let value = /** @type {JSONValue} */ (row.rec ? row.rec.value : row.last.value);
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
      const p = /** @type {Promise<number> & {queued?: Promise<void>, key?: string}} */ (saveRecord(id, /** @type {T} */ (value), { ifVersion }));
      /** @type {number | undefined} */
      let v;
      if (p.queued) {
        // With persist: saved once queued (the row shows it, pending); a
        // refusal on arrival comes back as an 'outbox' event (failed).
        const first = await Promise.race([p, p.queued.then(() => undefined)]);
        if (first === undefined) {
          p.then((ver) => onSaved?.(row.el, ver), () => { /* shown by the outbox's failed event */ });
        } else v = first;
      } else v = await p;
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
      // The record left the view while the save was in flight, and the view
      // already includes the save (a write that moved it out of a filtered
      // view, or a delete since): its row goes, as remote() would have
      // done but for the edits. Otherwise the change is still to come.
      if (v === undefined) return undefined; // queued
      if (!row.rec && row.dirty.size === 0 && view.version >= v && rows.get(id) === row) drop(row);
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

  /** @param {string} id */
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

  /** @param {any} e @param {string} id */
  function report(e, id) {
    if (onError) onError(e, id);
    else queueMicrotask(() => { throw e; });
  }

  /** @param {Element} target */
  function rowOf(target) {
    /** @type {Element | null} */
    let el = target;
    for (; el && el !== container; el = el.parentElement) {
      const row = byEl.get(el);
      if (row) return row;
    }
    return null;
  }

  /** @param {Event} e @param {string} selector */
  const target = (e, selector) => /** @type {HTMLElement | null} */ ((/** @type {Element} */ (e.target)).closest?.(selector) ?? null);

  /** @type {Record<string, (e: any) => void>} */
  const listeners = {
    /** @param {Event} e */
    input(e) {
      const c = target(e, '[data-field]');
      const row = c && rowOf(c);
      if (!c || !row) return;
      const f = c.dataset.field || '';
      const base = row.dirty.has(f) ? row.dirty.get(f) : shown.has(c) ? shown.get(c) : getPath(row.last.value, f);
      if (jsonEqual(read(c), base)) row.dirty.delete(f);
      else row.dirty.set(f, base);
      recheck(row);
    },
    /** @param {FocusEvent} e */
    focusin(e) {
      const c = target(e, '[data-field]');
      const row = c && rowOf(c);
      if (row) goTo(row.id);
    },
    /** @param {FocusEvent} e */
    focusout(e) {
      const c = target(e, '[data-field]');
      const row = c && rowOf(c);
      if (c && row && row.rec && !row.dirty.has(c.dataset.field || '')) fill(row, false);
      // Leaving the rows (a control's or a button's focus, not for
      // another element of them).
      const to = /** @type {Element | null} */ (e.relatedTarget);
      if (rowOf(/** @type {Element} */ (e.target)) && !(to && rowOf(to))) goTo(null);
    },
    /** @param {MouseEvent} e */
    click(e) {
      const b = target(e, '[data-action]');
      const row = b && rowOf(b);
      if (!b || !row) return;
      const act = b.dataset.action;
      if (act === 'save') save(row.id).catch((err) => report(err, row.id));
      else if (act === 'keep-mine') save(row.id, { keepMine: true }).catch((err) => report(err, row.id));
      else if (act === 'take-theirs' || act === 'discard') takeTheirs(row.id);
      else if (act === 'delete') view.delete(row.id).catch((err) => report(err, row.id));
      else return;
      e.preventDefault();
    },
    /** @param {KeyboardEvent} e */
    keydown(e) {
      if (!keys) return;
      const c = target(e, '[data-field]');
      const row = c && rowOf(c);
      if (!c || !row) return;
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

  // With persist: a queued write of a row that the server refused on
  // arrival — a precondition (the record changed meanwhile: 409, 412) shows
  // as a conflict, the user's value in the controls (keep mine, take
  // theirs); anything else goes to onError.
  /** @param {import('../viewsync.js').OutboxEvent} ev */
  function onOutbox(ev) {
    if (ev.type !== 'failed') return;
    // The tab that queued the write shows its refusal (any tab when that
    // one is gone: a reload, a closed tab).
    /** @type {import('./persist.js').Persistence} */ (/** @type {any} */ (view.session)._persist).mine(ev.write.key)
      .then((mine) => { if (mine && !destroyed) refused(ev); });
  }
  let destroyed = false;

  /** @param {import('../viewsync.js').OutboxEvent & {type: 'failed'}} ev */
  function refused(ev) {
    const w = ev.write;
    if (w.collection !== view.name || (w.kind !== 'put' && w.kind !== 'patch') || w.id === undefined) return;
    const row = rows.get(w.id) ?? (() => {
      const rec = view.record(/** @type {string} */ (w.id));
      return visible(rec) ? make(rec) : undefined;
    })();
    const code = ev.error.code;
    if (!row || (code !== 'precondition_failed' && code !== 'conflict' && ev.error.status !== 409)) {
      report(ev.error, w.id);
      return;
    }
    const server = row.rec ? row.rec.value : null;
    const mine = w.kind === 'put' ? w.value : mergePatch(/** @type {JSONValue} */ (server ?? {}), /** @type {JSONValue} */ (w.value));
    /** @type {string[]} */
    const fields = [];
    for (const c of fieldsOf(row)) {
      const f = c.dataset.field || '';
      if (row.dirty.has(f)) continue; // typed since: the user's newer text stays
      const x = getPath(/** @type {JSONValue} */ (mine), f);
      if (jsonEqual(x, getPath(/** @type {JSONValue} */ (server), f))) continue;
      // Marked as edited from a value that is not the server's, so that
      // it stays a conflict until the user chooses.
      row.dirty.set(f, { conflict: true });
      put(c, x);
      fields.push(f);
    }
    if (!fields.length && row.rec) return; // converged: theirs is mine
    row.conflict = { deleted: !row.rec, fields: fields.length ? fields : [...row.dirty.keys()], theirs: row.rec };
    mark(row);
    onConflict?.(row.el, row.conflict, row.rec);
  }
  const unsubscribeOutbox = /** @type {any} */ (view.session)._persist ? view.session.on('outbox', onOutbox) : undefined;

  for (const id of view.records.keys()) {
    const rec = view.record(id);
    if (visible(rec)) make(rec);
  }
  order();
  const unsubscribe = view.subscribe(onEvent);
  const unsubscribePresence = pres?.subscribe(() => {
    const by = editors();
    for (const row of rows.values()) showEditors(row, by);
  });
  if (pres) goTo(null);

  return {
    save: (id) => save(id),
    keepMine: (id) => save(id, { keepMine: true }),
    takeTheirs,
    destroy() {
      destroyed = true;
      unsubscribe();
      unsubscribePresence?.();
      unsubscribeOutbox?.();
      for (const [t, fn] of Object.entries(listeners)) container.removeEventListener(t, fn);
    },
  };
}

/**
 * cellsRow makes a row of cells: a tr of td in a table, else a div of divs.
 * @param {Document} doc
 * @param {Element} container
 * @param {Array<string | number | Node | null | undefined>} cells
 */
function cellsRow(doc, container, cells) {
  const table = /^(TBODY|THEAD|TFOOT|TABLE)$/.test(container.tagName);
  const el = doc.createElement(table ? 'tr' : 'div');
  for (const cell of cells) {
    const td = doc.createElement(table ? 'td' : 'div');
    if (cell && typeof cell === 'object' && 'nodeType' in cell) td.append(cell);
    else td.textContent = cell == null ? '' : String(cell);
    el.append(td);
  }
  return el;
}

/**
 * @param {Element} c
 * @returns {c is HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement}
 */
const isControl = (c) => /^(INPUT|TEXTAREA|SELECT)$/.test(c.tagName);

/**
 * readControl reads a control's value as JSON: checkbox → boolean, number → number (empty → null), else string.
 * @param {Element} c
 * @returns {JSONValue}
 */
function readControl(c) {
  if (!isControl(c)) return c.textContent;
  if (c.type === 'checkbox') return /** @type {HTMLInputElement} */ (c).checked;
  if (c.type === 'number' || c.dataset.type === 'number') {
    if (c.value.trim() === '') return null;
    const n = Number(c.value);
    return Number.isFinite(n) ? n : c.value;
  }
  return c.value;
}

/**
 * writeControl shows a JSON value in a control, or as the text of any other element.
 * @param {Element} c
 * @param {JSONValue | undefined} v
 */
function writeControl(c, v) {
  const s = v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (/** @type {HTMLInputElement} */ (c).type === 'checkbox') /** @type {HTMLInputElement} */ (c).checked = !!v;
  else if (isControl(c)) { if (c.value !== s) c.value = s; }
  else c.textContent = s;
}
