import { useState } from 'react';

/** A command shown as it is, with a button that copies it. */
export function CopyText({ text, label }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard (plain http on another host): select the text for the user to copy.
      const r = document.createRange();
      const el = document.querySelector(`[data-copy="${CSS.escape(text)}"]`);
      if (el) {
        r.selectNodeContents(el);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(r);
      }
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return (
    <span className="copy">
      <code data-copy={text}>{text}</code>
      <button type="button" onClick={() => void copy()} aria-label={label ?? `Copy ${text}`}>
        {done ? 'Copied' : 'Copy'}
      </button>
    </span>
  );
}
