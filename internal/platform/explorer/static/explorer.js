// Mounts GraphiQL (the UMD build: the globals React, ReactDOM and GraphiQL, the component, that
// the page's other scripts define) on #graphiql. A file of its own, not an inline
// script, so that the page's Content-Security-Policy can say script-src 'self'.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var endpoint = root.getAttribute('data-endpoint');

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

  var login = [
    '# Welcome to the tenantgraph explorer.',
    '#',
    '# To sign in, put your email and password below and run this mutation (the',
    '# play button, or Ctrl-Enter). Copy data.login.accessToken from the result',
    '# and paste it into this tab\'s Headers, below the editor, as',
    '#',
    '#   {"Authorization": "Bearer <accessToken>"}',
    '#',
    '# Then replace this mutation with what you want to run, for example',
    '#   query Me { me { id email name emailVerified } }',
    '#',
    '# Headers belong to a tab: they stay with this one, in this browser\'s local',
    '# storage, across reloads; a new tab (+) starts without them. An access token',
    '# lasts 15 minutes by default (ACCESS_TOKEN_TTL): then log in again, or trade',
    '# the refreshToken for a new pair with the refreshToken mutation.',
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
    fetcher: fetcher,
    defaultTabs: [{ query: login }],
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    defaultEditorToolsVisibility: 'headers'
  }));
})();
