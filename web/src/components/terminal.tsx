// The web terminal: xterm.js on `GET /pods/{id}/terminal` (docs/access.md). It opens its shell with
// `?session=new` and keeps the session id in the tab's sessionStorage, so a reload re-attaches to the
// same shell (its screen replayed) instead of starting a new one. Loaded only when the tab opens:
// xterm is most of the console's weight.
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'react';
import { useApi } from '../auth';

type State = 'connecting' | 'open' | 'closed';

const storageKey = (podId: string, container: string | undefined) => `berth.terminal.${podId}${container ? `.${container}` : ''}`;

/** Close codes and what the user is told. */
const CLOSED_WHY: Record<number, string> = {
  1000: 'the session ended',
  4001: 'this terminal was opened in another tab or window',
};

export default function WebTerminal({ podId, container }: { podId: string; container?: string | undefined }) {
  const api = useApi();
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>('connecting');
  const [note, setNote] = useState<string>();
  const [generation, setGeneration] = useState(0);
  const socket = useRef<WebSocket | undefined>(undefined);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const term = new Terminal({ cursorBlink: true, fontSize: 13, fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', scrollback: 5000, theme: { background: '#0d1117' } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    const key = storageKey(podId, container);
    const encoder = new TextEncoder();
    let disposed = false;
    let retriedFresh = false;

    const connect = (session: string) => {
      setState('connecting');
      const q = new URLSearchParams({ session, cols: String(term.cols), rows: String(term.rows) });
      if (container) q.set('container', container);
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      // Browsers cannot set headers on a WebSocket: the key goes as a subprotocol, never in the URL.
      const ws = new WebSocket(`${proto}://${location.host}/api/v1/pods/${encodeURIComponent(podId)}/terminal?${q}`, ['berth.terminal', `bearer.${api.key}`]);
      ws.binaryType = 'arraybuffer';
      socket.current = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        setState('open');
        setNote(undefined);
        term.focus();
      };
      ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
        if (typeof ev.data !== 'string') return void term.write(new Uint8Array(ev.data));
        const msg = JSON.parse(ev.data) as { type: string; id?: string; reattached?: boolean; exitCode?: number; message?: string };
        if (msg.type === 'session' && msg.id) {
          sessionStorage.setItem(key, msg.id);
          if (msg.reattached) term.reset();
        } else if (msg.type === 'exit') {
          sessionStorage.removeItem(key);
          term.write(`\r\n\x1b[2m[the shell exited with code ${msg.exitCode}]\x1b[0m\r\n`);
        } else if (msg.type === 'error') term.write(`\r\n\x1b[31m${msg.message}\x1b[0m\r\n`);
      };
      ws.onclose = (ev) => {
        if (disposed || socket.current !== ws) return;
        // A refused re-attach (the session ended or its grace ran out) never opens: start a new shell, once.
        if (!opened && session !== 'new' && !retriedFresh) {
          retriedFresh = true;
          sessionStorage.removeItem(key);
          return connect('new');
        }
        setState('closed');
        if (ev.code === 1000 || ev.code === 4001) sessionStorage.removeItem(key);
        setNote(opened ? (CLOSED_WHY[ev.code] ?? `the connection was lost (${ev.code})${sessionStorage.getItem(key) ? '; the shell waits a few minutes for a reconnect' : ''}`) : 'the terminal could not be opened (is the pod running?)');
      };
    };

    const onData = term.onData((d) => {
      const ws = socket.current;
      if (ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
    });
    const onResize = term.onResize(({ cols, rows }) => {
      const ws = socket.current;
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(el);
    connect(sessionStorage.getItem(key) ?? 'new');

    return () => {
      disposed = true;
      observer.disconnect();
      onData.dispose();
      onResize.dispose();
      // Leaving the tab detaches: the shell waits for a return within the grace period.
      socket.current?.close();
      socket.current = undefined;
      term.dispose();
    };
  }, [api, podId, container, generation]);

  const end = () => {
    socket.current?.send(JSON.stringify({ type: 'close' }));
    sessionStorage.removeItem(storageKey(podId, container));
  };

  return (
    <div className="terminal-pane" data-state={state}>
      <div className="pane-bar">
        <span className={`mark ${state === 'open' ? 'mark-answering' : state === 'connecting' ? 'mark-checking' : 'mark-not-yet'}`}>{state}</span>
        {note && <span className="small muted">{note}</span>}
        <span className="spacer" />
        {state === 'closed' ? (
          <button onClick={() => setGeneration((g) => g + 1)}>Reconnect</button>
        ) : (
          <button onClick={end} disabled={state !== 'open'} title="Hang up the shell now, instead of keeping it for a reload">
            End session
          </button>
        )}
      </div>
      <div className="terminal-box" ref={box} />
    </div>
  );
}
