// Mounts GraphiQL (the UMD build: the globals React, ReactDOM and GraphiQL, the component, that
// the page's other scripts define) on #graphiql. A file of its own, not an inline
// script, so that the page's Content-Security-Policy can say script-src 'self'.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var endpoint = root.getAttribute('data-endpoint');
  // GraphiQL's menus and dialogs (Radix) add a <style> element while open; the
  // page's CSP admits it with this page load's nonce, which that code reads from
  // the global __webpack_nonce__ (react-style-singleton's get-nonce).
  window.__webpack_nonce__ = root.getAttribute('data-style-nonce');

  // POSTs the operation as JSON with the headers of GraphiQL's headers editor
  // (an Authorization header among them once you have pasted one).
  function fetcher(params, opts) {
    var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    var extra = (opts && opts.headers) || {};
    Object.keys(extra).forEach(function (k) { headers[k] = extra[k]; });
    return fetch(endpoint, {
      method: 'POST', headers: headers, body: JSON.stringify(params), credentials: 'same-origin'
    }).then(function (res) {
      return res.text().then(function (text) {
        try {
          return JSON.parse(text);
        } catch (e) {
          return { errors: [{ message: 'HTTP ' + res.status + ': ' + text }] };
        }
      });
    });
  }

  // Subscriptions go over a websocket on the same endpoint (graphql-transport-ws,
  // docs/events.md), signed in with the tab's Authorization header in
  // connection_init: one client per token, kept while the page lives.
  var sockets = {};
  function socketFor(authorization) {
    var key = authorization || '';
    if (!sockets[key]) {
      var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + endpoint;
      sockets[key] = graphqlWs.createClient({
        url: url,
        connectionParams: { authorization: authorization || '' },
        retryAttempts: 0
      });
    }
    return sockets[key];
  }

  function isSubscription(params, opts) {
    var doc = opts && opts.documentAST;
    if (!doc) {
      return /^\s*subscription\b/.test(params.query || '');
    }
    var ops = doc.definitions.filter(function (d) { return d.kind === 'OperationDefinition'; });
    var op = ops.filter(function (d) { return d.name && d.name.value === params.operationName; })[0] || ops[0];
    return !!op && op.operation === 'subscription';
  }

  function header(opts, name) {
    var h = (opts && opts.headers) || {};
    var key = Object.keys(h).filter(function (k) { return k.toLowerCase() === name; })[0];
    return key ? h[key] : '';
  }

  function graphqlFetcher(params, opts) {
    if (isSubscription(params, opts)) {
      return socketFor(header(opts, 'authorization')).iterate({
        query: params.query, variables: params.variables, operationName: params.operationName
      });
    }
    return fetcher(params, opts);
  }

  // The first tab: how a newcomer gets an account and a token. Its comment lines
  // stay under 58 characters, so that they fit the query editor of a window 1,400 px
  // wide (560 px) without scrolling sideways (TestExplorerInBrowser checks it).
  var welcome = [
    '# Welcome to the tenantgraph explorer. The play button',
    '# runs an operation of this tab; with several, it asks',
    '# which one.',
    '#',
    '# 1. New here? Put your name, email and a password in',
    '#    Register and run it. The server emails you a link to',
    '#    verify your address. In development (make run)',
    '#    nothing is sent: the server prints each email in its',
    '#    log, the terminal where make run runs, on a line',
    '#      msg="mail (console driver, not sent)"',
    '#    with the link .../verify-email?token=<token>. Put',
    '#    that token in VerifyEmail and run it (creating an',
    '#    organization needs a verified email).',
    '# 2. Put your email and password in Login and run it.',
    '#    Copy data.login.accessToken from the result and',
    '#    paste it into this tab\'s Headers, below, as',
    '#',
    '#      {"Authorization": "Bearer <accessToken>"}',
    '#',
    '# 3. Then replace these operations with yours, e.g.',
    '#      query Me { me { id email name emailVerified } }',
    '#',
    '# Headers belong to a tab: they stay with this one, in',
    '# this browser\'s local storage, across reloads; a new',
    '# tab (+) starts without them. An access token lasts',
    '# 15 minutes by default (ACCESS_TOKEN_TTL): then log in',
    '# again, or trade the refreshToken for a new pair with',
    '# the refreshToken mutation.',
    'mutation Register {',
    '  register(input: {name: "Your Name",',
    '      email: "you@example.com", password: "your password"}) {',
    '    user { id email emailVerified }',
    '  }',
    '}',
    '',
    'mutation VerifyEmail {',
    '  verifyEmail(token: "the token from the link") {',
    '    email',
    '    emailVerified',
    '  }',
    '}',
    '',
    'mutation Login {',
    '  login(email: "you@example.com", password: "your password") {',
    '    accessToken',
    '    accessTokenExpiresAt',
    '    refreshToken',
    '    user { id email }',
    '  }',
    '}',
    ''
  ].join('\n');

  ReactDOM.createRoot(root).render(React.createElement(GraphiQL, {
    fetcher: graphqlFetcher,
    defaultTabs: [{ query: welcome }],
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    defaultEditorToolsVisibility: 'headers'
  }));
})();
