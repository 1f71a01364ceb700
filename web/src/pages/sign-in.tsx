import { useState, type FormEvent } from 'react';
import { ErrorBox } from '../components/error-box';
import { useAuth } from '../auth';

export function SignInPage() {
  const { signIn, signedOutWhy } = useAuth();
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signIn(key.trim());
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="sign-in">
      <form onSubmit={submit} className="card">
        <h1>Berth</h1>
        <p className="muted">Sign in with an API key. It is kept in this browser tab only, until you sign out or close it.</p>
        {signedOutWhy && <p className="muted">{signedOutWhy}</p>}
        <label>
          API key
          <input name="apiKey" type="password" autoComplete="current-password" value={key} onChange={(e) => setKey(e.target.value)} placeholder="berth_…" required autoFocus />
        </label>
        <ErrorBox error={error} />
        <button type="submit" className="primary" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="muted small">
          The server's first start writes an admin key to <code>admin.key</code> in its data directory; <code>POST /api/v1/keys</code> makes more.
        </p>
      </form>
    </div>
  );
}
