// Start-up times of the command line, as a user sees them: `ferry --version`, and `ferry serve`
// until its HTTP API answers a first request (a fresh data dir each run). Loopback only.
//   node bench/startup.mjs [path/to/dist/cli.js] [runs]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const cli = path.resolve(process.argv[2] ?? 'dist/cli.js');
const runs = Number(process.argv[3] ?? 5);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function version() {
  const t = process.hrtime.bigint();
  execFileSync(process.execPath, [cli, '--version']);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function get(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/openapi.json', agent: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
  });
}

async function serve() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-startup-'));
  const t = process.hrtime.bigint();
  const child = spawn(process.execPath, [cli, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
  while (!(await get(port))) await new Promise((r) => setTimeout(r, 5));
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

const v = [];
const s = [];
for (let i = 0; i < runs; i++) v.push(version());
for (let i = 0; i < runs; i++) s.push(await serve());
console.log(JSON.stringify({ cli, runs, versionMs: Math.round(median(v)), serveFirstAnswerMs: Math.round(median(s)), versionAll: v.map(Math.round), serveAll: s.map(Math.round) }));
