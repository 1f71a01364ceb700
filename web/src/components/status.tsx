import type { PodStatus } from '../api/types';

export function StatusBadge({ status }: { status: PodStatus }) {
  return <span className={`status status-${status.toLowerCase()}`}>{status}</span>;
}
