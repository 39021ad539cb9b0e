# docs/walkthroughs/helpers.sh: the shell helpers of the walk-throughs. Source it in bash
# from the repository's root, in a second terminal while the server runs:
#
#   make run 2>&1 | tee -i /tmp/tenantgraph.log     # first terminal: the server, its log in a file
#   source docs/walkthroughs/helpers.sh             # second terminal
#
# API is the endpoint and TENANTGRAPH_LOG the server's log (where the console mail driver
# prints each email, links included); set them before sourcing for another port or file.
# make docs-check runs every walk-through with these very helpers (scripts/docs-check.sh).

API=${API:-http://localhost:8080/query}
TENANTGRAPH_LOG=${TENANTGRAPH_LOG:-/tmp/tenantgraph.log}

# gql TOKEN JSON: send one GraphQL request as TOKEN ("" for anonymous); print the answer.
gql() { curl -s -w '\n' "$API" -H 'Content-Type: application/json' ${1:+-H "Authorization: Bearer $1"} -d "$2"; }

# field NAME: print the (last) string field NAME of the JSON on stdin.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# link EMAIL PATH: the token of the newest link to PATH (verify-email, accept-invitation,
# reset-password) emailed to EMAIL, read from the server log; it waits up to 10 s for the
# mail worker to send it. Without the log file it fails at once, saying how to make one.
link() {
  if [[ ! -f "$TENANTGRAPH_LOG" ]]; then
    echo "link: no server log at $TENANTGRAPH_LOG: start the server with" \
      "'make run 2>&1 | tee -i $TENANTGRAPH_LOG' (or set TENANTGRAPH_LOG to its log)," \
      "or copy the link from the server's output by hand" >&2
    return 1
  fi
  local _
  for _ in $(seq 50); do
    grep -F "to=$1 " "$TENANTGRAPH_LOG" | grep -o "$2?token=[A-Za-z0-9_-]*" | tail -n 1 | cut -d= -f2 | grep . && return
    sleep 0.2
  done
  echo "link: no $2 link emailed to $1 in $TENANTGRAPH_LOG after 10 s (is the server writing to it?)" >&2
  return 1
}

# signup NAME EMAIL: register, verify with the emailed link, log in; print the access token.
signup() {
  local verify
  gql "" '{"query": "mutation($in: RegisterInput!) { register(input: $in) { user { id } } }",
           "variables": {"in": {"email": "'"$2"'", "password": "correct horse battery", "name": "'"$1"'"}}}' >/dev/null
  verify=$(link "$2" verify-email) || return 1
  gql "" '{"query": "mutation($t: String!) { verifyEmail(token: $t) { id } }",
           "variables": {"t": "'"$verify"'"}}' >/dev/null
  gql "" '{"query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
           "variables": {"e": "'"$2"'", "p": "correct horse battery"}}' | field accessToken
}
