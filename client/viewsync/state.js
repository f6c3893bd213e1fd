// A view's state and how messages change it: reset, catch-up, commit.
import { ViewsyncError } from './errors.js';

/** newState returns the empty state of a view that has not synced yet. */
export function newState() {
  return { epoch: null, version: 0, records: new Map(), versions: new Map() };
}

/**
 * applyToState applies one message — {type:'reset'|'catchup'|'commit',
 * epoch, version, …} — to a view's state, in place, and says what happened:
 *   {status:'applied', event}  the state moved; event lists what changed
 *   {status:'stale'}           version ≤ current: already applied, ignored
 *   {status:'gap'}             a commit past current+1, or none synced yet
 *   {status:'epoch'}           another history: resync from the cursor
 * A reset always applies (it replaces the state). A catch-up upserts its
 * records and drops its deleted ids.
 */
export function applyToState(st, m) {
  const touched = new Map(); // id → existed before
  const touch = (id) => { if (!touched.has(id)) touched.set(id, st.records.has(id)); };
  const ev = { type: m.type, epoch: m.epoch ?? st.epoch, version: m.version };
  switch (m.type) {
    case 'reset': {
      const records = m.records || [];
      const incoming = new Map(records.map((r) => [r.id, r.version]));
      const sameEpoch = st.epoch === m.epoch;
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
      ev.records = records;
      return { status: 'applied', event: finish(ev, added, updated, removed) };
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
      ev.records = m.records || [];
      ev.deleted = m.deleted || [];
      break;
    }
    case 'commit': {
      if (st.epoch !== null && m.epoch && m.epoch !== st.epoch) return { status: 'epoch' };
      if (st.epoch === null) return { status: 'gap' };
      if (m.version <= st.version) return { status: 'stale' };
      if (m.version !== st.version + 1) return { status: 'gap' };
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
      ev.ops = m.ops || [];
      if (m.at) ev.at = m.at;
      break;
    }
    default:
      return { status: 'stale' };
  }
  const added = [], updated = [], removed = [];
  for (const [id, before] of touched) {
    const after = st.records.has(id);
    if (before && after) updated.push(id);
    else if (after) added.push(id);
    else if (before) removed.push(id);
  }
  return { status: 'applied', event: finish(ev, added, updated, removed) };
}

function finish(ev, added, updated, removed) {
  ev.added = added;
  ev.updated = updated;
  ev.removed = removed;
  ev.changed = [...added, ...updated, ...removed];
  return ev;
}

/**
 * changesMessages turns an answer of GET …/changes (or a snapshot) into the
 * messages applyToState takes, in order.
 */
export function changesMessages(body) {
  if (!body || typeof body !== 'object') throw new ViewsyncError('bad_response', 'changes: not a JSON object', 0);
  if (body.reset || (!('commits' in body) && !body.compacted && Array.isArray(body.records))) {
    return [{ type: 'reset', epoch: body.epoch, version: body.version, records: body.records || [] }];
  }
  if (body.compacted) {
    return [{ type: 'catchup', epoch: body.epoch, version: body.version, records: body.records || [], deleted: body.deleted || [] }];
  }
  return (body.commits || []).map((c) => ({ type: 'commit', epoch: body.epoch, version: c.version, at: c.at, ops: c.ops }));
}
