import { ApiError, ServerUnreachable } from '../api/client';

/** An error as the API worded it: its title and detail, and each field problem that no field showed. */
export function ErrorBox({ error, shownPaths }: { error: unknown; shownPaths?: ReadonlySet<string> }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const rest = error.problems.filter((p) => !shownPaths?.has(p.path));
    return (
      <div className="error" role="alert">
        <strong>{error.title}</strong>
        {error.detail && !(shownPaths && error.problems.length) && <span>: {error.detail}</span>}
        {rest.length > 0 && (
          <ul>
            {rest.map((p) => (
              <li key={p.path + p.message}>
                <code>{p.path}</code>: {p.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  const msg = error instanceof ServerUnreachable || error instanceof Error ? error.message : String(error);
  return (
    <div className="error" role="alert">
      {msg}
    </div>
  );
}
