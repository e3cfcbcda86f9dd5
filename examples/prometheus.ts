/**
 * pgferry's metrics in Prometheus: `new Replicator({ meter })` with a Meter of the OpenTelemetry
 * SDK whose reader is the Prometheus exporter. Starts two PostgreSQL servers, replicates a few
 * rows, leaves a few pending (backlog and lag), then scrapes its own /metrics endpoint on
 * 127.0.0.1 and prints the pgferry lines. It stops everything it started.
 * Run: npx tsx examples/prometheus.ts
 *
 * Needs `@opentelemetry/sdk-metrics` and `@opentelemetry/exporter-prometheus` (devDependencies
 * here; in your service, ordinary dependencies next to `@opentelemetry/api`).
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { Replicator } from 'pgferry';
import { freePort, provideServers, withDatabase, type ServerHandle } from '../tools/pg-servers.js';
import { runExample, sql } from './support.js';


/** A name of its own, as servers from PGFERRY_TEST_SERVERS are shared (dropped at the end). */
const DB = `pgferry_prometheus_${process.pid}`;

async function main(): Promise<void> {
  // The exporter serves GET /metrics; Prometheus scrapes it (port 9464 by default).
  const port = await freePort();
  const exporter = new PrometheusExporter({ host: '127.0.0.1', port, preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  const rep = new Replicator({ meter: provider.getMeter('pgferry') });
  let servers: ServerHandle[] = [];
  try {
    await exporter.startServer();
    servers = await provideServers(2);
    const [a, b] = servers.map((s) => withDatabase(s.url, DB)) as [string, string];
    for (const s of servers) await sql(s.url, `CREATE DATABASE ${DB}`);
    for (const url of [a, b]) await sql(url, 'CREATE TABLE orders (id int PRIMARY KEY, total numeric(12,2))');

    await rep.addDatabase('a', a);
    await rep.addDatabase('b', b);
    await rep.addSync('shop', { tables: ['orders'], databases: { a: 'source', b: 'target' }, autokick: false });
    await rep.install();

    await sql(a, 'INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 5) g');
    const r = await rep.kick('shop');
    console.log(`run: ${r.status}, ${r.totals.upserted} rows applied`);
    // Left pending, to show in pgferry_backlog and pgferry_lag.
    await sql(a, 'UPDATE orders SET total = total + 1 WHERE id <= 2');

    // Each scrape reads the backlog and lag from the sources (as rep.metrics() does).
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await res.text();
    console.log(`GET /metrics: ${res.status}`);
    for (const line of text.split('\n')) if (/^(# (HELP|TYPE) )?pgferry_/.test(line)) console.log(line);

    await rep.uninstall();
  } finally {
    await rep.stop();
    await provider.shutdown(); // also stops the exporter's server
    await Promise.all(servers.map((s) => sql(s.url, `DROP DATABASE IF EXISTS ${DB}`).catch(() => undefined)));
    await Promise.all(servers.map((s) => s.stop()));
  }
}

runExample(main);
