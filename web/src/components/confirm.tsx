import { useEffect, useRef, type ReactNode } from 'react';

/** A modal question (the native <dialog>): what will happen, and a button that does it. */
export function Confirm({ title, children, confirmLabel, danger, onConfirm, onCancel }: { title: string; children: ReactNode; confirmLabel: string; danger?: boolean; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog ref={ref} className="confirm" onCancel={onCancel} aria-label={title}>
      <h2>{title}</h2>
      <div className="confirm-body">{children}</div>
      <div className="confirm-actions">
        <button onClick={onCancel}>Cancel</button>
        <button className={danger ? 'danger' : 'primary'} onClick={onConfirm} autoFocus>
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
