import type { ReactNode } from 'react';

/** A labelled input with the API's message for it underneath. */
export function Field({ label, name, error, hint, children }: { label: string; name: string; error?: string[] | undefined; hint?: ReactNode; children: ReactNode }) {
  return (
    <label className={error?.length ? 'field invalid' : 'field'} data-field={name}>
      {label}
      {children}
      {hint && !error?.length && <span className="muted small">{hint}</span>}
      {error?.map((m) => (
        <span key={m} className="field-error" data-field-error={name}>
          {m}
        </span>
      ))}
    </label>
  );
}

/**
 * Which form field an API problem path belongs to: `/gpuCount` → gpuCount, `/ports(1)` → ports,
 * `/env/MY-VAR` → env, `/containers(0)/image` → image (the form makes a one-container pod).
 */
export function fieldOf(path: string): string {
  const segs = path.replace(/^\/containers\(0\)/, '').split('/').filter(Boolean);
  return (segs[0] ?? '').replace(/\(\d+\)$/, '');
}
