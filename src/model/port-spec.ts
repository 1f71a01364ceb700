/** Port specs as the native API, the CLI and RunPod write them: `8888/http`, `8888/http:private`, `22/tcp`. */
import type { PortProtocol, PortSpec } from './spec.js';

const PORT_SPEC = /^(\d{1,5})\/(http|tcp)(?::(private|public))?$/;

/** Parses `8888/http` (or `8888/http:private`); returns a message when it is not one. */
export function parsePort(text: string): PortSpec | string {
  const m = PORT_SPEC.exec(text.trim());
  if (!m) return `"${text}" is not a port: write it as <port>/http, <port>/http:private or <port>/tcp`;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return `port ${port} is out of range 1-65535`;
  const protocol = m[2] as PortProtocol;
  if (m[3] === 'private' && protocol !== 'http') return `port ${port}: only http ports can be private (the proxy checks the key; a TCP port is reached directly)`;
  return m[3] === 'private' ? { port, protocol, private: true } : { port, protocol };
}

export const formatPort = (p: PortSpec): string => `${p.port}/${p.protocol}${p.private ? ':private' : ''}`;
