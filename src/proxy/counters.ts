/**
 * The proxy's counters in this process (the server's in-process engine, or one worker's): plain
 * numbers bumped on the request path, read by the metrics endpoint. A worker sends its totals to
 * the server once a second (worker-ipc.ts), and the server adds the workers' up (workers.ts).
 */
import type { Socket } from 'node:net';

export interface ProxyCounts {
  /** Client connections accepted. */
  connections: number;
  /** HTTP requests, WebSocket upgrades included. */
  requests: number;
  upgrades: number;
  /** Bytes read from and written to clients, counted when a connection closes. */
  bytesReceived: number;
  bytesSent: number;
  /** Requests answered 502/504 because the pod's port failed or did not answer. */
  upstreamErrors: number;
}

export const zeroCounts = (): ProxyCounts => ({ connections: 0, requests: 0, upgrades: 0, bytesReceived: 0, bytesSent: 0, upstreamErrors: 0 });

/** This process's counts. */
export const proxyCounts: ProxyCounts = zeroCounts();

export function addCounts(into: ProxyCounts, from: ProxyCounts): ProxyCounts {
  into.connections += from.connections;
  into.requests += from.requests;
  into.upgrades += from.upgrades;
  into.bytesReceived += from.bytesReceived;
  into.bytesSent += from.bytesSent;
  into.upstreamErrors += from.upstreamErrors;
  return into;
}

/** Counts a client connection, and its bytes once it closes. */
export function countConnection(socket: Socket): void {
  proxyCounts.connections++;
  socket.once('close', () => {
    proxyCounts.bytesReceived += socket.bytesRead;
    proxyCounts.bytesSent += socket.bytesWritten;
  });
}
