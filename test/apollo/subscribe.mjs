// Apollo Client 4 with GraphQLWsLink against a running server: the way a React
// dashboard subscribes (docs/events.md). Run by internal/app
// TestApolloClientSubscription (make test) with:
//   API_URL   http://127.0.0.1:PORT/query
//   TOKEN     an access token of a member of ORG (an ADMIN: it marks the order paid)
//   ORG, CUSTOMER, PRODUCT   ids in that organization
// It reads the organization's eventsCursor through Apollo, subscribes to
// organizationEvents after it, creates an order and marks it paid with plain
// fetch calls (so only the subscription can bring the order into Apollo's
// cache), and checks that the normalized cache holds the order after
// order.created and shows it PAID after order.paid. Exits non-zero otherwise.
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const { API_URL, TOKEN, ORG, CUSTOMER, PRODUCT } = process.env;
for (const [k, v] of Object.entries({ API_URL, TOKEN, ORG, CUSTOMER, PRODUCT })) {
  if (!v) fail(`${k} is not set`);
}

function fail(msg) {
  console.error(`apollo: ${msg}`);
  process.exit(1);
}
setTimeout(() => fail("no answer within 20 s"), 20_000).unref();

const wsClient = createClient({
  url: API_URL.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${TOKEN}` },
  retryAttempts: 0,
});
const link = split(
  ({ query }) => {
    const def = getMainDefinition(query);
    return def.kind === "OperationDefinition" && def.operation === "subscription";
  },
  new GraphQLWsLink(wsClient),
  new HttpLink({ uri: API_URL, headers: { authorization: `Bearer ${TOKEN}` } }),
);
const cache = new InMemoryCache();
const client = new ApolloClient({ link, cache });

const ORDER = gql`
  fragment LiveOrder on Order {
    id
    number
    status
  }
`;

// Plain HTTP, past Apollo: the cache learns of the order only from the events.
async function post(query, variables) {
  const res = await fetch(API_URL, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) fail(`${query.split("(")[0]}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const { data } = await client.query({
  query: gql`
    query Cursor($org: ID!) {
      organization(orgId: $org) {
        id
        eventsCursor
      }
    }
  `,
  variables: { org: ORG },
});

let setOrderId;
const orderIdReady = new Promise((r) => (setOrderId = r));
const seen = [];
const done = new Promise((resolve) => {
  client
    .subscribe({
      query: gql`
        subscription Live($org: ID!, $after: String) {
          organizationEvents(orgId: $org, after: $after, types: ["order.*"]) {
            cursor
            action
            subject {
              __typename
              ... on Order {
                ...LiveOrder
              }
            }
          }
        }
        ${ORDER}
      `,
      variables: { org: ORG, after: data.organization.eventsCursor },
    })
    .subscribe({
      next: async ({ data, error }) => {
        if (error) fail(`subscription: ${error.message}`);
        const ev = data.organizationEvents;
        const orderId = await orderIdReady; // the event may come before createOrder's answer
        seen.push(ev.action);
        const id = cache.identify({ __typename: "Order", id: ev.subject.id });
        const cached = cache.readFragment({ id, fragment: ORDER });
        if (ev.action === "order.created") {
          if (!cached || cached.id !== orderId) fail(`order.created: ${id} is not in the cache`);
          console.log(`apollo: order.created, order ${cached.number} in the cache as ${cached.status}`);
          await post(`mutation($o: ID!, $id: ID!) { markOrderPaid(orgId: $o, id: $id) { id } }`, { o: ORG, id: orderId });
        }
        if (ev.action === "order.paid") {
          if (cached?.status !== "PAID") fail(`order.paid: the cache has ${JSON.stringify(cached)}`);
          console.log(`apollo: order.paid, the cached order is PAID`);
          resolve();
        }
      },
      error: (e) => fail(`subscription: ${e?.message ?? JSON.stringify(e)}`),
    });
});

// The subscription starts after its cursor: creating the order right away loses nothing.
const created = await post(
  `mutation($o: ID!, $in: CreateOrderInput!) { createOrder(orgId: $o, input: $in) { id } }`,
  { o: ORG, in: { customerId: CUSTOMER, lines: [{ productId: PRODUCT, quantity: 1 }] } },
);
setOrderId(created.createOrder.id);
await done;
if (seen.join(",") !== "order.created,order.paid") fail(`events ${seen}`);
await wsClient.dispose();
process.exit(0);
