// Whether the server answers. Any call that fails to reach it marks it down; while down, /healthz is
// asked every 2 s, and once it answers every listener is told (queries refetch, event streams reopen).
type State = 'up' | 'down';

let state: State = 'up';
const listeners = new Set<() => void>();
let poll: ReturnType<typeof setTimeout> | undefined;

function set(next: State): void {
  if (state === next) return;
  state = next;
  for (const l of listeners) l();
}

async function check(): Promise<void> {
  poll = undefined;
  try {
    const res = await fetch('/healthz', { cache: 'no-store' });
    if (res.ok) return set('up');
  } catch {
    // still down
  }
  poll = setTimeout(() => void check(), 2000);
}

export const connection = {
  get: (): State => state,
  subscribe(l: () => void): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
  down(): void {
    set('down');
    if (!poll) poll = setTimeout(() => void check(), 1000);
  },
  up(): void {
    set('up');
  },
};
