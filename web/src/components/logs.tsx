// A pod's logs, live: followed from the API into a bounded ring (100,000 lines), drawn windowed
// (only the rows in view are in the DOM, so 100,000 lines scroll as 100 do), ANSI colours, search.
import { useDeferredValue, useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { ansiRuns, stripAnsi } from '../ansi';
import { followLogs, LineRing, type LogLine } from '../api/logs';
import { useApi } from '../auth';
import { ErrorBox } from './error-box';

/** Lines kept; older ones are dropped as new ones come. */
export const LOG_CAPACITY = 100_000;
const ROW_HEIGHT = 18;
/** Rows drawn above and below the view, so a fast scroll shows no blank. */
const OVERSCAN = 20;

function Line({ line, query }: { line: LogLine; query: string }) {
  const runs = ansiRuns(line.text);
  return (
    <>
      {runs.map((r, i) => {
        const style = { color: r.fg, background: r.bg, fontWeight: r.bold ? 600 : undefined, opacity: r.dim ? 0.7 : undefined, fontStyle: r.italic ? 'italic' : undefined, textDecoration: r.underline ? 'underline' : undefined };
        return (
          <span key={i} style={style}>
            {query ? highlight(r.text, query) : r.text}
          </span>
        );
      })}
    </>
  );
}

function highlight(text: string, query: string) {
  const parts: ReactNode[] = [];
  const lower = text.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(query); i >= 0; i = lower.indexOf(query, at)) {
    parts.push(text.slice(at, i), <mark key={i}>{text.slice(i, i + query.length)}</mark>);
    at = i + query.length;
  }
  parts.push(text.slice(at));
  return parts;
}

export default function Logs({ podId, container, running }: { podId: string; container?: string | undefined; running: boolean }) {
  const api = useApi();
  const ring = useRef(new LineRing(LOG_CAPACITY));
  // Bumped at most once a frame while lines pour in: one render per frame, not per line.
  const [version, setVersion] = useState(0);
  const [ended, setEnded] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [follow, setFollow] = useState(true);
  const [search, setSearch] = useState('');
  const [attempt, setAttempt] = useState(0);
  const [tail, setTail] = useState(1000);
  const query = useDeferredValue(search.trim().toLowerCase());
  const scroller = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!running) return;
    const ac = new AbortController();
    ring.current.clear();
    setEnded(undefined);
    setError(undefined);
    let frame = 0;
    const onLine = (l: Omit<LogLine, 'seq'>) => {
      ring.current.push(l);
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        setVersion((v) => v + 1);
      });
    };
    followLogs({ key: api.key, podId, container, tail, onLine }, ac.signal).then(
      (why) => setEnded(why),
      (e: unknown) => !ac.signal.aborted && setError(e),
    );
    return () => {
      ac.abort();
      cancelAnimationFrame(frame);
    };
  }, [api, podId, container, running, attempt, tail]);

  const matches = useMemo(() => (query ? ring.current.filter((l) => stripAnsi(l.text).toLowerCase().includes(query)) : null), [query, version]);
  const count = matches ? matches.length : ring.current.length;
  // Rows are of one height, so the rows in view follow from the scroll position alone: each render
  // costs the rows drawn, whatever the count (a virtualizer measuring 100,000 rows per frame did not).
  const [scrollTop, setScrollTop] = useState(0);
  const [viewHeight, setViewHeight] = useState(0);
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setViewHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const top = follow ? Math.max(0, count * ROW_HEIGHT - viewHeight) : scrollTop;
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count, Math.ceil((top + viewHeight) / ROW_HEIGHT) + OVERSCAN);
  const rows: number[] = [];
  for (let i = first; i < last; i++) rows.push(i);

  // Following: after each render with new lines, the view goes to the bottom.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (follow && el) el.scrollTop = el.scrollHeight;
  });

  // Scrolling up stops following; back at the bottom, it follows again. Scrolls the view makes
  // itself only go down, so they never stop it.
  const lastTop = useRef(0);
  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_HEIGHT * 2;
    const up = el.scrollTop < lastTop.current;
    lastTop.current = el.scrollTop;
    if (atBottom && !follow) setFollow(true);
    else if (up && !atBottom && follow) setFollow(false);
  };

  if (!running && ring.current.length === 0) return <p className="muted">The pod is not running: it has no logs now. Its last lines after an exit are in the status above.</p>;
  return (
    <div className="logs-pane" data-lines={ring.current.length} data-total={ring.current.total}>
      <div className="pane-bar">
        <input type="search" placeholder="Search the logs" value={search} onChange={(e) => setSearch(e.target.value)} aria-label="Search the logs" />
        <span className="small muted" data-matches={matches?.length ?? ''}>
          {matches ? `${matches.length} of ${ring.current.length} lines` : `${ring.current.length} lines${ring.current.total > ring.current.length ? ` (the last ${LOG_CAPACITY.toLocaleString('en')})` : ''}`}
        </span>
        <span className="spacer" />
        <select aria-label="Lines to load" value={tail} onChange={(e) => setTail(Number(e.target.value))} style={{ width: 'auto' }}>
          {[1000, 10_000, LOG_CAPACITY].map((n) => (
            <option key={n} value={n}>
              the last {n.toLocaleString('en')} lines
            </option>
          ))}
        </select>
        <label className="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
      </div>
      <ErrorBox error={error} />
      <div className="log-view" ref={scroller} onScroll={onScroll}>
        <div style={{ height: count * ROW_HEIGHT, position: 'relative' }}>
          {rows.map((i) => {
            const line = ring.current.at(matches ? matches[i]! : i);
            if (!line) return null;
            return (
              <div key={line.seq} className={`log-line ${line.stream}`} style={{ transform: `translateY(${i * ROW_HEIGHT}px)` }}>
                <Line line={line} query={query} />
              </div>
            );
          })}
        </div>
      </div>
      {(ended !== undefined || error !== undefined) && (
        <p className="small muted log-ended">
          {ended ? `The stream ended: ${ended}.` : ''} <button className="link" onClick={() => setAttempt((a) => a + 1)}>Follow again</button>
        </p>
      )}
    </div>
  );
}
