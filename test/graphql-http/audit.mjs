// Runs the graphql-http GraphQL-over-HTTP audit suite against a running server
// and fails on any error or warning (notices are printed but do not fail).
// Usage: node audit.mjs http://127.0.0.1:8080/query   (or AUDIT_URL=...)
import { auditServer } from 'graphql-http';

const url = process.argv[2] || process.env.AUDIT_URL;
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint url>');
  process.exit(2);
}

const results = await auditServer({ url });
const count = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const r of results) {
  count[r.status]++;
  const line = `${r.status.toUpperCase().padEnd(6)} ${r.id} ${r.name}`;
  if (r.status === 'ok') {
    console.log(line);
    continue;
  }
  let body = '';
  try {
    body = await r.response.text();
  } catch {
    // the body was already read by the audit
  }
  console.log(`${line}\n       reason: ${r.reason}\n       response: ${r.response.status} ${r.response.headers.get('content-type') ?? ''} ${body.slice(0, 300)}`);
}
console.log(`\naudit of ${url}: ${results.length} audits, ${count.ok} ok, ${count.notice} notices, ${count.warn} warnings, ${count.error} errors`);
process.exit(count.warn + count.error > 0 ? 1 : 0);
