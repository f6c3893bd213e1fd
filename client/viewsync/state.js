// A view's state and how messages change it: reset, catch-up, commit, progress.
import { ViewsyncError } from './errors.js';

/**
 * @typedef {import('../viewsync.js').JSONValue} JSONValue
 * @typedef {import('../viewsync.js').Op} Op
 * @typedef {import('../viewsync.js').RecordOf<JSONValue>} Rec
 * @typedef {import('../viewsync.js').Change} Change
 */

/**
 * A message from a transport, as applyToState takes it: the WebSocket's
 * messages as they are, SSE and NDJSON events, the answers of …/changes.
 * Commits carry their epoch when the transport says it (SSE: in the event
 * id); one without is judged by its version alone. A filtered view's commit
 * may carry `after`: no commit between after (exclusive) and its version
 * concerns the view. A progress (filtered views only) moves the view's
 * version without changing its records.
 * @typedef {{type: 'reset', epoch: string, version: number, records?: Rec[]}} ResetMessage
 * @typedef {{type: 'catchup', epoch?: string, version: number, records?: Rec[], deleted?: string[]}} CatchUpMessage
 * @typedef {{type: 'commit', epoch?: string, version: number, after?: number, at?: string, ops?: Op[]}} CommitMessage
 * @typedef {{type: 'progress', epoch?: string, version: number}} ProgressMessage
 * @typedef {ResetMessage | CatchUpMessage | CommitMessage | ProgressMessage} Message
 */

/**
 * The state of a view: epoch null until the first reset.
 * @typedef {object} State
 * @property {string | null} epoch
 * @property {number} version
 * @property {Map<string, JSONValue>} records id → value
 * @property {Map<string, number>} versions id → version of the commit that last wrote it
 */

/**
 * What applying a message did; the event of a progress is null (the
 * records did not change).
 * @typedef {{status: 'applied', event: Change | null} | {status: 'stale' | 'gap' | 'epoch'}} Applied
 */

/**
 * newState returns the empty state of a view that has not synced yet.
 * @returns {State}
 */
export function newState() {
  return { epoch: null, version: 0, records: new Map(), versions: new Map() };
}

/**
 * applyToState applies one message to a view's state, in place, and says
 * what happened:
 *   {status:'applied', event}  the state moved; event lists what changed
 *                              (null for a progress: only the version moved)
 *   {status:'stale'}           version ≤ current: already applied, ignored
 *   {status:'gap'}             a commit that does not follow the current
 *                              version, or none synced yet
 *   {status:'epoch'}           another history: resync from the cursor
 * A reset always applies (it replaces the state). A catch-up upserts its
 * records and drops its deleted ids. A commit follows the current version
 * when its version is current+1 or, for one with `after` (a filtered
 * view's), when after ≤ current < version. A progress of the same epoch
 * past the current version moves the version; one before the first sync is
 * ignored.
 * @param {State} st
 * @param {Message} m
 * @returns {Applied}
 */
export function applyToState(st, m) {
  /** @type {Map<string, boolean>} id → existed before */
  const touched = new Map();
  /** @param {string} id */
  const touch = (id) => { if (!touched.has(id)) touched.set(id, st.records.has(id)); };
  switch (m.type) {
    case 'reset': {
      const records = m.records || [];
      const incoming = new Map(records.map((r) => [r.id, r.version]));
      const sameEpoch = st.epoch === m.epoch;
      /** @type {string[]} */
      const added = [], updated = [], removed = [];
      for (const [id, v] of incoming) {
        if (!st.versions.has(id)) added.push(id);
        else if (!sameEpoch || st.versions.get(id) !== v) updated.push(id);
      }
      for (const id of st.versions.keys()) if (!incoming.has(id)) removed.push(id);
      st.records.clear();
      st.versions.clear();
      for (const r of records) {
        st.records.set(r.id, r.value);
        st.versions.set(r.id, r.version);
      }
      st.epoch = m.epoch;
      st.version = m.version;
      const ev = { type: m.type, epoch: m.epoch, version: m.version, records };
      return { status: 'applied', event: { ...ev, added, updated, removed, changed: [...added, ...updated, ...removed] } };
    }
    case 'catchup': {
      if (st.epoch !== null && m.epoch && m.epoch !== st.epoch) return { status: 'epoch' };
      if (st.epoch === null) return { status: 'gap' };
      if (m.version <= st.version) return { status: 'stale' };
      for (const r of m.records || []) {
        touch(r.id);
        st.records.set(r.id, r.value);
        st.versions.set(r.id, r.version);
      }
      for (const id of m.deleted || []) {
        touch(id);
        st.records.delete(id);
        st.versions.delete(id);
      }
      st.version = m.version;
      const ev = { type: m.type, epoch: st.epoch, version: m.version, records: m.records || [], deleted: m.deleted || [] };
      return { status: 'applied', event: { ...ev, ...changed(st, touched) } };
    }
    case 'commit': {
      if (st.epoch !== null && m.epoch && m.epoch !== st.epoch) return { status: 'epoch' };
      if (st.epoch === null) return { status: 'gap' };
      if (m.version <= st.version) return { status: 'stale' };
      if (typeof m.after === 'number' ? m.after > st.version : m.version !== st.version + 1) return { status: 'gap' };
      for (const op of m.ops || []) {
        touch(op.id);
        if (op.op === 'delete') {
          st.records.delete(op.id);
          st.versions.delete(op.id);
        } else {
          st.records.set(op.id, op.value);
          st.versions.set(op.id, m.version);
        }
      }
      st.version = m.version;
      /** @type {import('../viewsync.js').CommitChange} */
      const ev = { type: m.type, epoch: st.epoch, version: m.version, ops: m.ops || [], ...changed(st, touched) };
      if (m.at) ev.at = m.at;
      return { status: 'applied', event: ev };
    }
    case 'progress': {
      if (st.epoch !== null && m.epoch && m.epoch !== st.epoch) return { status: 'epoch' };
      if (st.epoch === null || !(m.version > st.version)) return { status: 'stale' };
      st.version = m.version;
      return { status: 'applied', event: null };
    }
    default:
      return { status: 'stale' };
  }
}

/**
 * changed sorts the touched ids by what became of them.
 * @param {State} st
 * @param {Map<string, boolean>} touched id → existed before
 */
function changed(st, touched) {
  /** @type {string[]} */
  const added = [], updated = [], removed = [];
  for (const [id, before] of touched) {
    const after = st.records.has(id);
    if (before && after) updated.push(id);
    else if (after) added.push(id);
    else if (before) removed.push(id);
  }
  return { added, updated, removed, changed: [...added, ...updated, ...removed] };
}

/**
 * changesMessages turns an answer of GET …/changes (or a snapshot) into the
 * messages applyToState takes, in order. For a filtered view (filtered), a
 * page of commits is followed by a progress to the answer's version: the
 * commits of the collection up to it that are not in the answer do not
 * concern the view.
 * @param {any} body the decoded JSON answer
 * @param {{filtered?: boolean}} [options]
 * @returns {Message[]}
 */
export function changesMessages(body, { filtered = false } = {}) {
  if (!body || typeof body !== 'object') throw new ViewsyncError('bad_response', 'changes: not a JSON object', 0);
  if (body.reset || (!('commits' in body) && !body.compacted && Array.isArray(body.records))) {
    return [{ type: 'reset', epoch: body.epoch, version: body.version, records: body.records || [] }];
  }
  if (body.compacted) {
    return [{ type: 'catchup', epoch: body.epoch, version: body.version, records: body.records || [], deleted: body.deleted || [] }];
  }
  /** @type {Message[]} */
  const msgs = (body.commits || []).map((/** @type {any} */ c) => {
    /** @type {CommitMessage} */
    const m = { type: 'commit', epoch: body.epoch, version: c.version, at: c.at, ops: c.ops };
    if (typeof c.after === 'number') m.after = c.after;
    return m;
  });
  if (filtered && typeof body.version === 'number') msgs.push({ type: 'progress', epoch: body.epoch, version: body.version });
  return msgs;
}
