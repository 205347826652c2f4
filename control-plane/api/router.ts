// The control plane's routes, in one table: method and path to handler, each handler's errors answered alike.

import { WeftError } from '../../errors.ts';
import { sendError, sendJson, type Request, type Response } from './http.ts';

export type Handler = (req: Request, res: Response) => Promise<void> | void;

export function router(routes: Record<string, Handler>, log: (e: Record<string, unknown>) => void): (req: Request, res: Response) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = routes[`${req.method} ${path}`];
    if (!handler) {
      const allowed = Object.keys(routes).filter((k) => k.endsWith(` ${path}`)).map((k) => k.split(' ')[0]);
      const err = allowed.length
        ? new WeftError('WEFT_API_NOT_FOUND', `${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}`)
        : new WeftError('WEFT_API_NOT_FOUND', `no such endpoint: ${path}`);
      sendError(res, err);
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (!(err instanceof WeftError)) log({ msg: 'internal error', path, error: (err as Error)?.stack ?? String(err) });
        sendError(res, err);
      });
  };
}

export function healthz(_req: Request, res: Response): void {
  sendJson(res, 200, { ok: true });
}
