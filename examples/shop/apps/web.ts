// web: the shop's front page. Plain Node with no mesh code: it asks for http://catalog/items through the HTTP
// proxy its sidecar names in HTTP_PROXY (the sidecar adds mTLS, routing and retries), and shows which catalog
// version answered and who called whom, as the mesh vouched for it in x-weft-peer-identity.
//
//   GET /       an HTML page: the items with their prices, the catalog version, the caller identities
//   GET /api    the same as JSON

import http from 'node:http';

const PORT = Number(process.env.PORT ?? 8080);
const PROXY = process.env.HTTP_PROXY || process.env.http_proxy;
// Passed on to catalog: the canary switch (the catalog Route sends x-canary: true to v2) and trace context,
// so a trace joins up across the hops.
const PASS_ON = ['x-canary', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-request-id'];

interface Item {
  sku: string;
  name: string;
  cents: number;
  currency: string;
  badge?: string;
}

interface Catalog {
  version: string;
  calledBy: string | null;
  items: Item[];
  prices: { calledBy: string | null };
}

interface Shop {
  web: { calledBy: string | null };
  catalog: { version: string; calledBy: string | null };
  prices: { calledBy: string | null };
  items: Item[];
}

class CatalogError extends Error {
  readonly status: number;
  /** set when the mesh answered rather than catalog (x-weft-reason), e.g. an open circuit breaker */
  readonly reason: string | null;
  constructor(status: number, reason: string | null, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** GET http://catalog/items: to the proxy (absolute URI, as HTTP_PROXY clients do), or straight if there is none. */
function getCatalog(headers: http.IncomingHttpHeaders): Promise<Catalog> {
  const target = new URL('http://catalog/items');
  const proxy = PROXY ? new URL(PROXY) : null;
  const pass = Object.fromEntries(PASS_ON.filter((h) => headers[h] !== undefined).map((h) => [h, headers[h]!]));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: proxy ? proxy.hostname : target.hostname,
        port: proxy ? Number(proxy.port || 80) : 8081,
        path: proxy ? target.href : target.pathname,
        headers: { ...pass, host: target.host, accept: 'application/json' },
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200) {
            try {
              resolve(JSON.parse(body) as Catalog);
            } catch {
              reject(new CatalogError(502, null, 'catalog answered something that is not JSON'));
            }
            return;
          }
          const reason = res.headers['x-weft-reason'];
          reject(new CatalogError(res.statusCode ?? 502, typeof reason === 'string' ? reason : null, body.trim().slice(0, 300)));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('catalog took longer than 5 s')));
    req.on('error', (err) => reject(new CatalogError(502, null, err.message)));
    req.end();
  });
}

const escape = (s: unknown) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const money = (i: Item) => `${(i.cents / 100).toFixed(2)} ${i.currency}`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{padding:.25rem 1rem .25rem 0;text-align:left}
.badge{background:#e33;color:#fff;border-radius:.5rem;padding:0 .4rem;font-size:.8em}
code{font-size:.85em}.who{color:#555}</style></head>
<body>
${body}
</body></html>
`;
}

function shopPage(shop: Shop): string {
  const rows = shop.items.map((i) => `<tr><td>${escape(i.name)}${i.badge ? ` <span class="badge">${escape(i.badge)}</span>` : ''}</td><td>${escape(money(i))}</td></tr>`).join('\n');
  return page('Weft shop', `<h1>Weft shop</h1>
<p>Served by catalog <strong>${escape(shop.catalog.version)}</strong>.</p>
<table>
<tr><th>item</th><th>price</th></tr>
${rows}
</table>
<h2>Who called whom</h2>
<ul class="who">
<li>web was called by <code>${escape(shop.web.calledBy ?? 'no mesh identity')}</code></li>
<li>catalog ${escape(shop.catalog.version)} was called by <code>${escape(shop.catalog.calledBy ?? 'no mesh identity')}</code></li>
<li>prices was called by <code>${escape(shop.prices.calledBy ?? 'no mesh identity')}</code></li>
</ul>
<p>JSON: <a href="/api">/api</a></p>`);
}

const server = http.createServer(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/' && path !== '/api') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('no such page; try / or /api\n');
    return;
  }
  const json = path === '/api';
  const calledBy = (req.headers['x-weft-peer-identity'] as string | undefined) ?? null;
  try {
    const c = await getCatalog(req.headers);
    const shop: Shop = { web: { calledBy }, catalog: { version: c.version, calledBy: c.calledBy }, prices: c.prices, items: c.items };
    if (json) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(shop, null, 2) + '\n');
    else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(shopPage(shop));
  } catch (err) {
    const e = err instanceof CatalogError ? err : new CatalogError(502, null, (err as Error).message);
    const error = { catalogStatus: e.status, reason: e.reason, message: e.message };
    if (json) {
      res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ web: { calledBy }, error }, null, 2) + '\n');
      return;
    }
    const who = e.reason ? `the mesh answered for it (x-weft-reason: ${e.reason})` : 'catalog answered';
    res.writeHead(502, { 'content-type': 'text/html; charset=utf-8' }).end(page('Weft shop: catalog unavailable', `<h1>Weft shop</h1>
<p>The catalog is unavailable: ${escape(e.status)}; ${escape(who)}.</p>
<pre>${escape(e.message)}</pre>`));
  }
});

server.listen(PORT, '127.0.0.1', () => process.stdout.write(`web listening on 127.0.0.1:${PORT}\n`));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
