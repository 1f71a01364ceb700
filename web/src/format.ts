// How the console writes times, sizes and GPUs.
import type { PodSummary } from './api/types';

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** How long the pod has run, for a running pod; '—' otherwise. */
export function uptime(p: Pick<PodSummary, 'status' | 'lastStartedAt'>, now: number): string {
  if (p.status !== 'RUNNING' || !p.lastStartedAt) return '—';
  return duration(now - Date.parse(p.lastStartedAt));
}

/** `2 × NVIDIA RTX A6000`, `1 × any GPU`, or `CPU`. */
export function gpus(p: Pick<PodSummary, 'gpuCount' | 'gpuType'>): string {
  if (p.gpuCount === 0) return 'CPU';
  return `${p.gpuCount} × ${p.gpuType ?? 'any GPU'}`;
}

export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}
