// The long-poll transport.
import { ViewsyncError } from './errors.js';
import { HTTPLink } from './http.js';
import { backoff, sleep } from './util.js';

/** LongPollLink: GET …/changes with wait, one request outstanding per collection. */
export class LongPollLink extends HTTPLink {
  /** @returns {'longpoll'} */
  get kind() { return 'longpoll'; }

  /**
   * @param {import('./view.js').View<any>} v
   * @param {AbortSignal} signal
   */
  async _run(v, signal) {
    let wait = this._s._opts.longPollWait;
    let gaps = 0;
    while (!signal.aborted) {
      const cur = v._cursor();
      const ac = AbortSignal.any ? AbortSignal.any([signal, AbortSignal.timeout((wait + 15) * 1000)]) : signal;
      try {
        if (!cur) await this._snapshot(v, ac);
        else if (await this._changes(v, cur, wait, ac) < 0) {
          if (++gaps > 1) await sleep(backoff(gaps, 250, 5000), signal);
          continue;
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e?.code === 'bad_request' && /\bwait\b/.test(e.message) && wait > 1) {
          wait = Math.max(1, Math.floor(wait / 2)); // over the server's --max-wait
          continue;
        }
        if (e?.name === 'TimeoutError' || e?.name === 'AbortError') throw new ViewsyncError('timeout', 'long-poll timed out', 0);
        if (e?.code === 'network' && !this._proven) e.transport = true;
        throw e;
      }
      gaps = 0;
      this._up();
    }
  }
}
