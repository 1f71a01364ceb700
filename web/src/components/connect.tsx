// Connect: every way into a pod, ready to use, from the pod view's `connection` (docs/access.md).
import { useEffect, useState } from 'react';
import { ApiError } from '../api/client';
import type { PodView } from '../api/types';
import { useApi } from '../auth';
import { CopyText } from './copy';
import { ErrorBox } from './error-box';

type Mark = 'answering' | 'not yet' | 'checking';

/**
 * Whether something listens on the pod's port, asked every 5 s while the pod runs: a WebSocket to
 * the API's port tunnel opens only when a connection to the port inside the pod succeeds (409
 * otherwise), and is closed at once. The key goes as a subprotocol, as for the terminal.
 */
function usePortMark(key: string, podId: string, port: number, running: boolean): Mark {
  const [mark, setMark] = useState<Mark>('checking');
  useEffect(() => {
    if (!running) {
      setMark('not yet');
      return;
    }
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ws: WebSocket | undefined;
    const probe = () => {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      ws = new WebSocket(`${scheme}://${location.host}/api/v1/pods/${podId}/ports/${port}/tunnel`, ['berth.tunnel', `bearer.${key}`]);
      let opened = false;
      ws.onopen = () => {
        opened = true;
        if (!stop) setMark('answering');
        ws?.close();
      };
      ws.onclose = () => {
        if (stop) return;
        if (!opened) setMark('not yet');
        timer = setTimeout(probe, 5000);
      };
    };
    probe();
    return () => {
      stop = true;
      clearTimeout(timer);
      ws?.close();
    };
  }, [key, podId, port, running]);
  return mark;
}

function HttpPort({ pod, port, url, isPrivate }: { pod: PodView; port: number; url: string; isPrivate: boolean }) {
  const api = useApi();
  const running = pod.status === 'RUNNING';
  const mark = usePortMark(api.key, pod.id, port, running);
  const [error, setError] = useState<unknown>();
  // A private port needs the owner's key, which a browser cannot send: ask for a one-time link.
  const openPrivate = async () => {
    setError(undefined);
    const w = window.open('about:blank', '_blank');
    try {
      const link = await api.post<{ url: string }>(`/pods/${pod.id}/proxy-link`, { port, path: '/' });
      if (w) w.location.href = link.url;
      else window.location.href = link.url;
    } catch (e) {
      w?.close();
      setError(e);
    }
  };
  return (
    <li className="http-port" data-port={port}>
      <span className={`mark mark-${mark.replace(' ', '-')}`} title={mark === 'answering' ? 'something listens on this port in the pod' : 'nothing listens on this port yet'}>
        {mark}
      </span>
      <span className="mono">{port}/http</span>
      {isPrivate ? (
        <>
          <button type="button" onClick={() => void openPrivate()}>
            Open (private: one-time link)
          </button>
          <span className="muted mono small">{url}</span>
        </>
      ) : (
        <a href={url} target="_blank" rel="noreferrer" className="mono">
          {url}
        </a>
      )}
      {error instanceof ApiError || error ? <ErrorBox error={error} /> : null}
    </li>
  );
}

export function Connect({ pod }: { pod: PodView }) {
  const c = pod.connection;
  return (
    <div className="card connect" aria-label="Connect">
      <h2>Connect</h2>
      {c.http.length > 0 && (
        <>
          <h3>HTTP</h3>
          <ul className="plain">
            {c.http.map((h) => (
              <HttpPort key={h.port} pod={pod} port={h.port} url={h.url} isPrivate={h.private} />
            ))}
          </ul>
        </>
      )}
      {c.tcp.length > 0 && (
        <>
          <h3>TCP</h3>
          <ul className="plain">
            {c.tcp.map((t) => (
              <li key={t.port} data-tcp-port={t.port}>
                <span className="mono">{t.port}/tcp</span> →{' '}
                {t.address ? <CopyText text={t.address} /> : <span className="muted">not published yet (the pod is not running)</span>}
              </li>
            ))}
          </ul>
        </>
      )}
      {c.ssh && (
        <>
          <h3>SSH</h3>
          <p>
            <CopyText text={c.ssh.command} label="Copy the ssh command" />
          </p>
          {c.ssh.containers &&
            Object.entries(c.ssh.containers).map(([name, cmd]) => (
              <p key={name}>
                <span className="muted">{name}: </span>
                <CopyText text={cmd} />
              </p>
            ))}
          <p className="muted small">With a key registered for your account (berth ssh-key add); no sshd needed in the image.</p>
        </>
      )}
      {!c.http.length && !c.tcp.length && !c.ssh && <p className="muted">This pod publishes no ports.</p>}
    </div>
  );
}
