// The Server-Sent Events transport: one event stream per collection.
import { StreamLink } from './stream.js';
import { parseCursor } from './util.js';

/**
 * SSEParser reads a text/event-stream as the HTML standard defines it:
 * lines end in CRLF, LF or CR (also when split across chunks), ":" starts a
 * comment, a blank line dispatches the event gathered so far. Feed it decoded
 * text with push; it calls onEvent({type, data, id}) and keeps lastEventId.
 * The server's reconnection hint (retry) is not kept: the session's backoff
 * decides.
 */
export class SSEParser {
  /** @param {(event: {type: string, data: string, id: string}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.lastEventId = '';
    this._buf = '';
    this._skipLF = false;
    this._first = true;
    this._type = '';
    /** @type {string[]} */
    this._data = [];
    this._hasData = false;
  }

  /** @param {string} chunk decoded text */
  push(chunk) {
    let buf = this._buf + chunk;
    if (this._first && buf.length > 0) {
      if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
      this._first = buf.length === 0;
    }
    let start = 0;
    if (this._skipLF && buf.length > 0) {
      if (buf[0] === '\n') start = 1;
      this._skipLF = false;
    }
    const re = /\r\n|\r|\n/g;
    re.lastIndex = start;
    let m;
    while ((m = re.exec(buf)) !== null) {
      // A CR at the very end may be the first half of a CRLF.
      if (m[0] === '\r' && m.index === buf.length - 1) this._skipLF = true;
      this._line(buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this._buf = buf.slice(start);
  }

  /** @param {string} line */
  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line[0] === ':') return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event': this._type = value; break;
      case 'data': this._data.push(value); this._hasData = true; break;
      case 'id': if (!value.includes('\0')) this.lastEventId = value; break;
      default: // ignored, as the standard says
    }
  }

  _dispatch() {
    const type = this._type || 'message';
    const data = this._data.join('\n');
    const had = this._hasData;
    this._type = '';
    this._data = [];
    this._hasData = false;
    if (had) this.onEvent({ type, data, id: this.lastEventId });
  }
}

/**
 * SSELink follows each view over its collection's Server-Sent Events
 * (GET …/events, one stream per view as the contract has it, a filtered
 * view's filter in where=), with the view's cursor as Last-Event-ID. See StreamLink for how a stream is
 * read and reopened.
 */
export class SSELink extends StreamLink {
  /** @returns {'sse'} */
  get kind() { return 'sse'; }

  // The server writes a retry hint at once.
  get _greets() { return true; }

  /**
   * @param {import('./view.js').View<any>} v
   * @param {import('./http.js').Cursor | null} cur
   */
  _request(v, cur) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'text/event-stream' };
    if (cur) headers['Last-Event-ID'] = `${cur.epoch}:${cur.after}`;
    const q = [v._whereQuery(), v._presence ? 'presence=1' : ''].filter(Boolean).join('&');
    return { path: `/v1/collections/${v.name}/events${q ? `?${q}` : ''}`, headers, type: 'text/event-stream' };
  }

  /** @param {(m: import('./stream.js').StreamMessage) => void} onMessage */
  _decoder(onMessage) {
    return new SSEParser((e) => {
      if (e.type === 'error') {
        /** @type {any} */
        let m = null;
        try { m = JSON.parse(e.data)?.error; } catch { /* not JSON */ }
        onMessage({ type: 'error', code: m?.code, message: m?.message });
        return;
      }
      if (e.type === 'presence') {
        /** @type {any} */
        let m = null;
        try { m = JSON.parse(e.data); } catch { /* not JSON */ }
        if (m && typeof m === 'object') onMessage({ ...m, type: 'presence' });
        return;
      }
      if (e.type !== 'reset' && e.type !== 'catchup' && e.type !== 'commit' && e.type !== 'progress') return; // a ping is a comment
      /** @type {any} */
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (!m || typeof m !== 'object') return;
      m.type = e.type;
      // A commit event's data has no epoch: its id (the cursor) has. A
      // progress (a filtered view's) has both, in its data and its id.
      if (e.type === 'commit') m.epoch = parseCursor(e.id)?.epoch ?? m.epoch;
      if (e.type === 'progress') {
        const id = parseCursor(e.id);
        m.epoch ??= id?.epoch;
        m.version ??= id?.version;
      }
      onMessage(m);
    });
  }
}
