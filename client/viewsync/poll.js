// The poll transport.
import { HTTPLink } from './http.js';
import { sleep } from './util.js';

/**
 * PollLink: the seed's cheap "am I stale?" — GET …/version with
 * If-None-Match every pollInterval; only when it moved, GET …/changes.
 */
export class PollLink extends HTTPLink {
  /** @returns {'poll'} */
  get kind() { return 'poll'; }

  /**
   * @param {import('./view.js').View<any>} v
   * @param {AbortSignal} signal
   */
  async _run(v, signal) {
    const interval = this._s._opts.pollInterval;
    while (!signal.aborted) {
      try {
        const cur = v._cursor();
        if (!cur) await this._snapshot(v, signal);
        else {
          const path = `/v1/collections/${v.name}/version`;
          const res = await this._s._fetch('GET', path, { headers: { 'If-None-Match': `"${cur.epoch}:${cur.after}"` }, signal });
          await this._check(res, `GET ${path}`);
          if (res.status !== 304) {
            const head = await res.json();
            if (head.epoch !== cur.epoch || head.version > cur.after) {
              // Page through until caught up; a gap starts again from the cursor.
              for (let c = v._cursor(); c && (c.epoch !== head.epoch || c.after < head.version); c = v._cursor()) {
                if (await this._changes(v, c, 0, signal) <= 0) break;
              }
            }
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e?.code === 'network' && !this._proven) e.transport = true;
        throw e;
      }
      this._up();
      await sleep(interval, signal);
    }
  }
}
