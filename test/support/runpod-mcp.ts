/**
 * Drives RunPod's official MCP server (npm `@runpod/mcp-server`, a RunPod REST client that takes
 * its base URL from the environment) over stdio, as an MCP client would: newline-delimited
 * JSON-RPC 2.0, `initialize`, then `tools/call`. Each tool call is one or more REST calls to Berth.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

export interface ToolResult<T = unknown> {
  isError: boolean;
  /** The tool's JSON payload (the REST response body, or the tool's error object). */
  payload: T;
}

interface RpcResponse {
  id?: number;
  result?: { content?: { type: string; text?: string }[]; isError?: boolean };
  error?: { code: number; message: string };
}

const require = createRequire(import.meta.url);

/** The stdio entry of an installed copy of the package (4.x as itself, 3.x under its npm alias). */
export function mcpEntry(pkg: '@runpod/mcp-server' | '@runpod/mcp-server-v1'): string {
  return join(dirname(require.resolve(`${pkg}/package.json`)), 'dist', 'stdio.mjs');
}

export class McpClient {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: RpcResponse) => void>();
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: RpcResponse;
      try {
        msg = JSON.parse(line) as RpcResponse;
      } catch {
        return;
      }
      if (msg.id !== undefined) this.waiting.get(msg.id)?.(msg);
    });
    child.stderr.on('data', (c: Buffer) => (this.stderr += c.toString()));
    child.on('exit', (code) => {
      for (const done of this.waiting.values()) done({ error: { code: -1, message: `MCP server exited (${code}): ${this.stderr.slice(-2000)}` } });
    });
  }

  /** Starts the server with only the environment given (and PATH): no RunPod host can be reached from a test. */
  static async start(entry: string, env: Record<string, string>): Promise<McpClient> {
    const child = spawn(process.execPath, [entry], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const client = new McpClient(child);
    await client.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'berth-compat-test', version: '1.0.0' } });
    client.notify('notifications/initialized');
    return client;
  }

  private send(msg: object): void {
    this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...msg })}\n`);
  }

  notify(method: string, params?: object): void {
    this.send({ method, ...(params ? { params } : {}) });
  }

  request(method: string, params: object, timeoutMs = 60_000): Promise<RpcResponse> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MCP ${method} timed out; stderr: ${this.stderr.slice(-2000)}`)), timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        if (r.error) reject(new Error(`MCP ${method}: ${r.error.message}`));
        else resolve(r);
      });
      this.send({ id, method, params });
    });
  }

  async tools(): Promise<{ name: string; inputSchema: Record<string, unknown> }[]> {
    const r = (await this.request('tools/list', {})) as { result?: { tools?: { name: string; inputSchema: Record<string, unknown> }[] } };
    return r.result?.tools ?? [];
  }

  async call<T = unknown>(name: string, args: Record<string, unknown>): Promise<ToolResult<T>> {
    const r = await this.request('tools/call', { name, arguments: args });
    const text = r.result?.content?.find((c) => c.type === 'text')?.text ?? 'null';
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text;
    }
    return { isError: r.result?.isError === true, payload: payload as T };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin.end();
    this.child.kill('SIGTERM');
    await exited;
  }
}
