// Runs graphql-http's server audit (the GraphQL over HTTP spec's checks) against a URL and prints
// every result as one JSON line: {id, name, status, reason}.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
for (const result of await auditServer({ url })) {
  const reason = result.status === 'ok' ? null : result.reason;
  console.log(JSON.stringify({ id: result.id, name: result.name, status: result.status, reason }));
}
