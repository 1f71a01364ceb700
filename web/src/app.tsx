// The console's shell: data fetching, the key, the routes and the frame around every page.
import { QueryClient, QueryClientProvider, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useEffect, useSyncExternalStore } from 'react';
import { Link, Redirect, Route, Switch, useLocation } from 'wouter';
import { ApiError } from './api/client';
import { connection } from './api/connection';
import { AuthProvider, useAuth } from './auth';
import { PodsPage } from './pages/pods';
import { SignInPage } from './pages/sign-in';

// Pages other than the list load when first opened, keeping the first load small.
const PodPage = lazy(() => import('./pages/pod'));
const CreatePodPage = lazy(() => import('./pages/create-pod'));
const resources = () => import('./pages/resources');
const NetworkVolumesPage = lazy(() => resources().then((m) => ({ default: m.NetworkVolumesPage })));
const TemplatesPage = lazy(() => resources().then((m) => ({ default: m.TemplatesPage })));
const SecretsPage = lazy(() => resources().then((m) => ({ default: m.SecretsPage })));
const RegistryAuthsPage = lazy(() => resources().then((m) => ({ default: m.RegistryAuthsPage })));
const SshKeysPage = lazy(() => resources().then((m) => ({ default: m.SshKeysPage })));
const ApiKeysPage = lazy(() => resources().then((m) => ({ default: m.ApiKeysPage })));
const NodesPage = lazy(() => resources().then((m) => ({ default: m.NodesPage })));

/** The resource pages, in the top bar after the pods. */
const RESOURCE_LINKS: [string, string][] = [
  ['/network-volumes', 'Volumes'],
  ['/templates', 'Templates'],
  ['/secrets', 'Secrets'],
  ['/registry-auths', 'Registries'],
  ['/ssh-keys', 'SSH keys'],
  ['/keys', 'API keys'],
  ['/nodes', 'Nodes'],
];

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will answer the same again; a server that is away is retried by the reconnect below.
      retry: (n, e) => !(e instanceof ApiError && e.status < 500) && n < 2,
      refetchOnWindowFocus: false,
      staleTime: 5_000,
    },
  },
});

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <AuthProvider>
        <Shell />
      </AuthProvider>
    </QueryClientProvider>
  );
}

/** Whether the server answers, as the API client last found. */
export function useServerUp(): boolean {
  return useSyncExternalStore(connection.subscribe, () => connection.get() === 'up');
}

function Shell() {
  const { api, who, signOut } = useAuth();
  const qc = useQueryClient();
  const up = useServerUp();
  const [location] = useLocation();

  // A key the server stops taking (removed) signs out, saying why.
  useEffect(
    () =>
      qc.getQueryCache().subscribe((ev) => {
        const e = ev.type === 'updated' ? ev.query.state.error : null;
        if (e instanceof ApiError && e.status === 401) signOut(`${e.title}: ${e.detail ?? ''}`);
      }),
    [qc, signOut],
  );
  // Back after an outage: everything shown is fetched again.
  useEffect(() => (up ? void qc.invalidateQueries() : undefined), [up, qc]);

  if (!api) return <SignInPage />;
  return (
    <div className="shell">
      <header className="top">
        <Link href="/pods" className="brand">
          Berth
        </Link>
        <nav>
          <Link href="/pods" className={location === '/pods' ? 'active' : ''}>
            Pods
          </Link>
          <Link href="/pods/new" className={location === '/pods/new' ? 'active' : ''}>
            New pod
          </Link>
          {RESOURCE_LINKS.map(([href, label]) => (
            <Link key={href} href={href} className={location === href ? 'active' : ''}>
              {label}
            </Link>
          ))}
        </nav>
        <span className="spacer" />
        <span className="who" title={who?.admin ? 'admin key' : 'key'}>
          {who?.owner}
          {who?.admin ? ' (admin)' : ''}
        </span>
        <button className="link" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      {!up && (
        <div className="banner offline" role="alert">
          The Berth server does not answer. Reconnecting as soon as it is back…
        </div>
      )}
      <main>
        <Suspense fallback={<p className="muted">Loading…</p>}>
          <Switch>
            <Route path="/">
              <Redirect to="/pods" />
            </Route>
            <Route path="/pods" component={PodsPage} />
            <Route path="/pods/new" component={CreatePodPage} />
            <Route path="/pods/:id">{(p) => <PodPage id={p.id} />}</Route>
            <Route path="/network-volumes" component={NetworkVolumesPage} />
            <Route path="/templates" component={TemplatesPage} />
            <Route path="/secrets" component={SecretsPage} />
            <Route path="/registry-auths" component={RegistryAuthsPage} />
            <Route path="/ssh-keys" component={SshKeysPage} />
            <Route path="/keys" component={ApiKeysPage} />
            <Route path="/nodes" component={NodesPage} />
            <Route>
              <h1>Not found</h1>
              <p>
                No page here. <Link href="/pods">Pods</Link>
              </p>
            </Route>
          </Switch>
        </Suspense>
      </main>
    </div>
  );
}
