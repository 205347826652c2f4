// The trace exporter's connection to the collector: one socket, which the span queue can cut when an export
// outlives its deadline, and which tells whether an export's request reached the collector without an answer.
// Such spans may or may not have been kept (the collector read them and was slow to say so, or it was stuck):
// they are counted apart from the dropped ones, so that a span counted as dropped never shows up at a collector.

import type { Agent, AgentOptions, ClientRequest } from 'node:http';
import type { Otel } from './otel.ts';

export interface ExportConnection {
  /** destroys the open socket: the request on it ends as failed, and cannot deliver later */
  cut(): void;
  /** forgets what earlier exports saw; called as each export starts */
  begin(): void;
  /** since begin(): did a request go out whole and end with no response? */
  unanswered(): boolean;
}

interface Watchable {
  addRequest(req: ClientRequest, ...rest: unknown[]): void;
}

/** An agent factory for the OTLP exporter (`httpAgentOptions`), and the handle on what it creates. */
export function exportConnection(otel: Otel): ExportConnection & { factory: (protocol: string) => Agent } {
  let agent: Agent | null = null;
  /** a request of the current export went out whole and closed with no response */
  let lost = false;
  /** requests open now: the export's outcome can be known before the last one's 'close' */
  const open = new Set<{ sent: boolean; answered: boolean }>();
  const watch = (req: ClientRequest) => {
    const r = { sent: false, answered: false };
    open.add(r);
    req.once('finish', () => (r.sent = true));
    req.once('response', () => (r.answered = true));
    req.once('close', () => {
      open.delete(r);
      if (r.sent && !r.answered) lost = true;
    });
  };
  return {
    factory(protocol) {
      const options: AgentOptions = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 };
      const created = new (protocol === 'https:' ? otel.https() : otel.http()).Agent(options) as Agent & Watchable;
      // Every request the exporter makes goes through addRequest (undocumented, but what agent libraries override).
      const add = created.addRequest;
      created.addRequest = function (req, ...rest) {
        watch(req);
        add.call(this, req, ...rest);
      };
      agent = created;
      return created;
    },
    cut() {
      for (const sockets of Object.values(agent?.sockets ?? {})) for (const socket of sockets ?? []) socket.destroy();
    },
    begin() {
      lost = false;
    },
    unanswered: () => lost || [...open].some((r) => r.sent && !r.answered),
  };
}
