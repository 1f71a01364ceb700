// The API key: kept in sessionStorage (this tab, until it closes), never in a URL or localStorage.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';
import { createApi, type Api } from './api/client';
import type { WhoAmI } from './api/types';

const STORAGE = 'berth.apiKey';

interface Auth {
  api: Api | undefined;
  who: WhoAmI | undefined;
  /** Checks the key with `GET /whoami` and keeps it; throws the API's error when it is refused. */
  signIn(key: string): Promise<void>;
  /** Forgets the key; `why` is shown on the sign-in page. */
  signOut(why?: string): void;
  signedOutWhy: string | undefined;
}

const AuthContext = createContext<Auth | undefined>(undefined);

function stored(): { key: string; who: WhoAmI } | undefined {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORAGE) ?? 'null') as { key: string; who: WhoAmI } | null;
    return v && typeof v.key === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState(stored);
  const [why, setWhy] = useState<string>();
  const signIn = useCallback(async (key: string) => {
    const who = await createApi(key).get<WhoAmI>('/whoami');
    sessionStorage.setItem(STORAGE, JSON.stringify({ key, who }));
    setWhy(undefined);
    setSession({ key, who });
  }, []);
  const signOut = useCallback((reason?: string) => {
    sessionStorage.removeItem(STORAGE);
    setWhy(reason);
    setSession(undefined);
  }, []);
  const value = useMemo<Auth>(() => ({ api: session ? createApi(session.key) : undefined, who: session?.who, signIn, signOut, signedOutWhy: why }), [session, signIn, signOut, why]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const a = useContext(AuthContext);
  if (!a) throw new Error('useAuth outside AuthProvider');
  return a;
}

/** The signed-in API client; pages under the signed-in layout only. */
export function useApi(): Api {
  const { api } = useAuth();
  if (!api) throw new Error('useApi while signed out');
  return api;
}
