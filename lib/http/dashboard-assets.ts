// The dashboard's bundled files (built into dist/ui by scripts/build-ui.js), served under /ui/ next to the API.
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';

/** Where the page, the API and charts may load from: this origin only (no CDN), inline styles for the charts. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

const TYPES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** The folder holding the built dashboard: `dist/ui` next to `dist/lib` (in the package), or under the repo. */
export function dashboardDir(): string | undefined {
  const candidates = [path.resolve(__dirname, '..', '..', 'ui'), path.resolve(__dirname, '..', '..', 'dist', 'ui')];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'app.js')));
}

/**
 * Answers `GET /ui/...` from `dir` and returns true, or returns false for any other path. The files are the page's
 * code only (no grid data, no token): the page reads the token from its address (`#token=`, never sent to the server)
 * and calls the API with it, so the files need no token themselves.
 */
export function serveDashboard(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  pathname: string,
  dir: string | undefined,
): boolean {
  if (pathname !== '/ui' && !pathname.startsWith('/ui/')) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('use GET\n');
    return true;
  }
  if (pathname === '/ui') {
    res.writeHead(302, { location: '/ui/' }).end();
    return true;
  }
  const name = pathname === '/ui/' ? 'index.html' : pathname.slice('/ui/'.length);
  const type = TYPES[name];
  if (dir === undefined) {
    res
      .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
      .end('the dashboard is not built: run `npm run build` in the htc-grid-cdk checkout\n');
    return true;
  }
  if (type === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`no file ${name} in the dashboard\n`);
    return true;
  }
  const body = fs.readFileSync(path.join(dir, name));
  res.writeHead(200, { 'content-type': type, 'content-length': body.length, ...SECURITY_HEADERS });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
