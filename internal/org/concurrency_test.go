package org_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/platform/db"
)

// These tests fire concurrent mutations through the HTTP endpoint and check that
// the tenancy invariants hold whatever the interleaving. They do not call
// t.Parallel: they run alone, so the shared server's connection pool is theirs,
// their timings mean something, and a hang points at them.

const (
	raceTransferMut = `mutation($o: ID!, $u: ID!) { transferOwnership(orgId: $o, newOwnerId: $u) { id } }`
	raceRemoveMut   = `mutation($o: ID!, $u: ID!) { removeMember(orgId: $o, userId: $u) }`
	raceRoleMut     = `mutation($o: ID!, $u: ID!, $r: Role!) { changeMemberRole(orgId: $o, userId: $u, role: $r) { role user { id } } }`
	raceLeaveMut    = `mutation($o: ID!) { leaveOrganization(orgId: $o) }`
	raceAcceptMut   = `mutation($t: String!) { acceptInvitation(token: $t) { role user { id } } }`
	raceRevokeMut   = `mutation($o: ID!, $i: ID!) { revokeInvitation(orgId: $o, invitationId: $i) { id status } }`
	raceInviteMut   = `mutation($o: ID!, $e: String!, $r: Role) { inviteMember(orgId: $o, email: $e, role: $r) { id status } }`
)

// raceTimeout bounds one burst of concurrent requests; a healthy burst takes well under a second.
const raceTimeout = 20 * time.Second

// racePost sends one request as token, with a User-Agent naming it: the audit
// event the request writes, if any, carries that name.
func racePost(t *testing.T, token, agent, query string, vars map[string]any) Response {
	h := http.Header{"User-Agent": {agent}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return srv.PostHeaders(t, h, query, vars)
}

// raceCheck reports (with t.Errorf, so from any goroutine) a response with an error
// that has no code or is masked as internal, or with neither data nor errors. It
// returns the response's code ("" for success).
func raceCheck(t *testing.T, what string, r Response) string {
	for _, e := range r.Errors {
		switch c, _ := e.Extensions["code"].(string); c {
		case "":
			t.Errorf("%s: an error without extensions.code: %s", what, r.Raw)
		case "INTERNAL_SERVER_ERROR":
			t.Errorf("%s: INTERNAL_SERVER_ERROR: %s", what, r.Raw)
		}
	}
	if len(r.Errors) == 0 && (len(r.Data) == 0 || string(r.Data) == "null") {
		t.Errorf("%s: neither data nor errors: %s", what, r.Raw)
	}
	if r.Status != http.StatusOK {
		t.Errorf("%s: HTTP %d: %s", what, r.Status, r.Raw)
	}
	return r.Code()
}

// raceRun runs fn(0..n-1) in n goroutines released at once and returns how long
// they took (see raceWait when they hang).
func raceRun(t *testing.T, n int, fn func(i int)) time.Duration {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	began := time.Now()
	close(start)
	raceWait(t, &wg, fmt.Sprintf("%d concurrent requests", n))
	return time.Since(began)
}

// raceWait waits for wg. When it takes longer than raceTimeout, it reports what
// the server's database sessions were doing, cancels the sessions stuck on a lock
// until wg is done (those requests then answer INTERNAL_SERVER_ERROR), and fails.
func raceWait(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(raceTimeout):
	}
	sessions := raceUnstick(done)
	t.Fatalf("%s were still running after %s (requests cancelled to end the hang answer INTERNAL_SERVER_ERROR). "+
		"The server's database sessions were:\n%s", what, raceTimeout, sessions)
}

// raceUnstick lists the test database's sessions, then cancels those waiting for
// a lock until done is closed, so that the hang is reported rather than the
// package timing out. It uses its own connection: the server's pool may be exhausted.
func raceUnstick(done <-chan struct{}) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := db.Open(ctx, srv.Config.DirectURL(), db.Options{})
	if err != nil {
		return "(cannot inspect: " + err.Error() + ")"
	}
	defer admin.Close()
	var rows []struct {
		State string `db:"state"`
		Wait  string `db:"wait"`
		Query string `db:"query"`
	}
	err = admin.SelectContext(ctx, &rows, `
		SELECT coalesce(state, '') AS state, coalesce(wait_event_type || ':' || wait_event, '') AS wait,
			left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY 1, 2, 3`)
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "(pg_stat_activity: %v)\n", err)
	}
	fmt.Fprintf(&b, "%d sessions:\n", len(rows))
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-20s %-28s %s\n", r.State, r.Wait, r.Query)
	}
	for {
		admin.ExecContext(ctx, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`) //nolint:errcheck
		select {
		case <-done:
			return b.String()
		case <-ctx.Done():
			return b.String() + "(the requests were still stuck a minute after cancelling the lock waiters)\n"
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func raceMaxSeq(t *testing.T) int64 {
	t.Helper()
	var seq int64
	if err := srv.DB.Get(&seq, `SELECT coalesce(max(seq), 0) FROM audit_events`); err != nil {
		t.Fatal(err)
	}
	return seq
}

type raceEvent struct {
	Seq      int64           `db:"seq"`
	Action   string          `db:"action"`
	Actor    *uuid.UUID      `db:"actor_id"`
	Target   *string         `db:"target_id"`
	Metadata json.RawMessage `db:"metadata"`
	Agent    *string         `db:"user_agent"`
}

// raceEvents returns org's audit events after seq, oldest first.
func raceEvents(t *testing.T, org uuid.UUID, after int64) []raceEvent {
	t.Helper()
	var out []raceEvent
	if err := srv.DB.Select(&out, `SELECT seq, action, actor_id, target_id, metadata, user_agent
		FROM audit_events WHERE organization_id = $1 AND seq > $2 ORDER BY seq`, org, after); err != nil {
		t.Fatal(err)
	}
	return out
}

func raceRoles(t *testing.T, org uuid.UUID) map[uuid.UUID]string {
	t.Helper()
	var rows []struct {
		User uuid.UUID `db:"user_id"`
		Role string    `db:"role"`
	}
	if err := srv.DB.Select(&rows, `SELECT user_id, role FROM organization_members WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	out := make(map[uuid.UUID]string, len(rows))
	for _, r := range rows {
		out[r.User] = r.Role
	}
	return out
}

func raceTally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = "OK"
		}
		parts[i] = fmt.Sprintf("%s=%d", name, m[k])
	}
	return strings.Join(parts, " ")
}

type raceOp struct {
	kind          string // transfer, remove, role, leave
	actor, target int    // indexes into the users; target is the actor for leave
	role          string // for role
	delay         time.Duration
	code, raw     string // the outcome
}

var raceAction = map[string]string{
	"transfer": "ownership.transferred",
	"remove":   "member.removed",
	"role":     "member.role_changed",
	"leave":    "member.left",
}

var raceRank = map[string]int{"MEMBER": 1, "ADMIN": 2, "OWNER": 3}

func TestConcurrentMembershipChangesKeepOneOwner(t *testing.T) {
	// User 0 owns the organization; 1-3 are ADMIN, 4-10 MEMBER.
	initial := []string{"OWNER", "ADMIN", "ADMIN", "ADMIN", "MEMBER", "MEMBER", "MEMBER", "MEMBER", "MEMBER", "MEMBER", "MEMBER"}
	users := make([]*Session, len(initial))
	users[0] = srv.RegisterVerified(t, "raceowner")
	org := srv.CreateOrg(t, users[0], "Race "+uuid.NewString()[:8])
	var wg sync.WaitGroup
	for i := 1; i < len(users); i++ {
		wg.Go(func() { users[i] = srv.AddMember(t, users[0], org, initial[i], fmt.Sprintf("race%02d", i)) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	index := map[uuid.UUID]int{}
	for i, u := range users {
		index[u.UserID] = i
	}

	// The plan. Ownership moves among users 0, 1, 2 and 4 (a MEMBER at first).
	// changeMemberRole hits each of users 3 and 5-10 once, towards the other role:
	// no role change can be a no-op (a no-op succeeds without writing an event), so
	// every success must have written exactly one. Removals and departures mostly
	// concern the others, so that ownership keeps moving, but now and then hit a
	// possible owner.
	seed := uint64(time.Now().UnixNano())
	t.Logf("plan seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	successors := []int{0, 1, 2, 4}
	others := []int{3, 5, 6, 7, 8, 9, 10}
	pick := func(s []int) int { return s[rng.IntN(len(s))] }
	var ops []*raceOp
	for k := range 20 {
		// Most transfers are asked for by whoever is the owner when they start (-1:
		// read then), the others by anyone; the target is another possible owner.
		op := &raceOp{kind: "transfer", actor: -1, target: pick(successors)}
		if k%4 == 3 {
			op.actor = rng.IntN(len(users))
			for op.target == op.actor {
				op.target = pick(successors)
			}
		}
		ops = append(ops, op)
	}
	for _, target := range others {
		role := "ADMIN"
		if initial[target] == "ADMIN" {
			role = "MEMBER"
		}
		actor := target
		for actor == target {
			actor = rng.IntN(6) // the owner, the admins, two members
		}
		if target == 3 {
			actor = 1 + rng.IntN(2) // an admin: allowed only while it owns the organization
		}
		ops = append(ops, &raceOp{kind: "role", actor: actor, target: target, role: role})
	}
	for range 12 {
		actor, target := rng.IntN(6), pick(others[1:]) // not 3: its role change must find it
		if rng.IntN(8) == 0 {
			target = pick(successors)
		}
		if target == actor {
			continue
		}
		ops = append(ops, &raceOp{kind: "remove", actor: actor, target: target})
	}
	for len(ops) < 50 {
		a := pick(others[4:]) // mostly 8-10, so that most role changes find their target
		if rng.IntN(6) == 0 {
			if a = rng.IntN(len(users)); a == 3 {
				a = 10
			}
		}
		ops = append(ops, &raceOp{kind: "leave", actor: a, target: a})
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	// Released together, the requests would all see the first owner; spread over
	// 300 ms (each one overlapping many others), ownership has time to move.
	for _, op := range ops {
		op.delay = time.Duration(rng.IntN(300)) * time.Millisecond
	}
	agent := func(i int) string { return fmt.Sprintf("race-op-%02d", i) }

	seq := raceMaxSeq(t)
	elapsed := raceRun(t, len(ops), func(i int) {
		op := ops[i]
		time.Sleep(op.delay)
		if op.actor < 0 {
			var owner uuid.UUID
			if err := srv.DB.Get(&owner, `SELECT user_id FROM organization_members WHERE organization_id = $1 AND role = 'OWNER'`, org); err != nil {
				t.Error(err)
				op.code = "(no owner read)"
				return
			}
			op.actor = index[owner]
			for op.target == op.actor {
				op.target = successors[(slices.Index(successors, op.target)+1)%len(successors)]
			}
		}
		vars := map[string]any{"o": org, "u": users[op.target].UserID}
		var q string
		switch op.kind {
		case "transfer":
			q = raceTransferMut
		case "remove":
			q = raceRemoveMut
		case "role":
			q, vars["r"] = raceRoleMut, op.role
		case "leave":
			q, vars = raceLeaveMut, map[string]any{"o": org}
		}
		r := racePost(t, users[op.actor].AccessToken, agent(i), q, vars)
		op.code = raceCheck(t, fmt.Sprintf("%s by user %d of user %d", op.kind, op.actor, op.target), r)
		op.raw = r.Raw
	})

	ok := map[string]int{}
	codes := map[string]map[string]int{}
	allowed := map[string]bool{"": true, "FORBIDDEN": true, "NOT_FOUND": true, "CONFLICT": true, "BAD_USER_INPUT": true}
	for _, op := range ops {
		if codes[op.kind] == nil {
			codes[op.kind] = map[string]int{}
		}
		codes[op.kind][op.code]++
		if op.code == "" {
			ok[op.kind]++
		} else if !allowed[op.code] {
			t.Errorf("%s by user %d: unexpected code %s: %s", op.kind, op.actor, op.code, op.raw)
		}
	}
	events := raceEvents(t, org, seq)
	t.Logf("%d requests in %s; %d audit events", len(ops), elapsed.Round(time.Millisecond), len(events))
	for _, k := range []string{"transfer", "remove", "role", "leave"} {
		t.Logf("  %-8s %s", k, raceTally(codes[k]))
	}

	// Exactly one owner.
	final := raceRoles(t, org)
	owners := 0
	for _, r := range final {
		if r == "OWNER" {
			owners++
		}
	}
	if owners != 1 {
		t.Errorf("%d owners after the race, want 1: %v", owners, final)
	}

	// Exactly one event per successful mutation, written by that very request.
	byAgent := map[string][]raceEvent{}
	perAction := map[string]int{}
	for _, e := range events {
		a := ""
		if e.Agent != nil {
			a = *e.Agent
		}
		byAgent[a] = append(byAgent[a], e)
		perAction[e.Action]++
	}
	total := 0
	for i, op := range ops {
		got := byAgent[agent(i)]
		if op.code != "" {
			if len(got) != 0 {
				t.Errorf("%s by user %d failed (%s) but wrote %d audit events", op.kind, op.actor, op.code, len(got))
			}
			continue
		}
		total++
		if len(got) != 1 {
			t.Errorf("%s by user %d of user %d succeeded and wrote %d audit events, want 1", op.kind, op.actor, op.target, len(got))
			continue
		}
		e := got[0]
		if e.Action != raceAction[op.kind] || e.Actor == nil || *e.Actor != users[op.actor].UserID ||
			e.Target == nil || *e.Target != users[op.target].UserID.String() {
			t.Errorf("%s by user %d of user %d wrote %s by %v of %v", op.kind, op.actor, op.target, e.Action, e.Actor, e.Target)
		}
	}
	for kind, action := range raceAction {
		if perAction[action] != ok[kind] {
			t.Errorf("%d %s succeeded but the audit log has %d %s events", ok[kind], kind, perAction[action], action)
		}
	}
	if len(events) != total {
		t.Errorf("%d mutations succeeded but the organization got %d audit events", total, len(events))
	}
	if t.Failed() {
		t.FailNow()
	}

	// Replaying the log from the initial roles, each event must be one the rules
	// allowed at that point, leave one owner, and the replay must end where the
	// database is: the transactions did serialise, each on what it had locked.
	state := map[uuid.UUID]string{}
	for i, u := range users {
		state[u.UserID] = initial[i]
	}
	for _, e := range events {
		var meta struct {
			Before struct {
				Role         string    `json:"role"`
				Owner        uuid.UUID `json:"owner"`
				NewOwnerRole string    `json:"newOwnerRole"`
			} `json:"before"`
			After struct {
				Role string `json:"role"`
			} `json:"after"`
		}
		if err := json.Unmarshal(e.Metadata, &meta); err != nil {
			t.Fatalf("event %d metadata %s: %v", e.Seq, e.Metadata, err)
		}
		actor, target := *e.Actor, uuid.MustParse(*e.Target)
		me, them := state[actor], state[target]
		bad := ""
		switch e.Action {
		case "ownership.transferred":
			if me != "OWNER" || them == "" || them == "OWNER" || meta.Before.Owner != actor || meta.Before.NewOwnerRole != them {
				bad = "transfer not by the owner, or to a non-member"
			}
			state[actor], state[target] = "ADMIN", "OWNER"
		case "member.removed":
			if raceRank[me] <= raceRank[them] || them == "" || meta.Before.Role != them {
				bad = "removal of a member the actor did not outrank"
			}
			delete(state, target)
		case "member.role_changed":
			if raceRank[me] <= raceRank[them] || them == "" || raceRank[meta.After.Role] > raceRank[me] ||
				meta.Before.Role != them || meta.After.Role == them {
				bad = "role change the actor was not allowed"
			}
			state[target] = meta.After.Role
		case "member.left":
			if actor != target || me == "" || me == "OWNER" || meta.Before.Role != me {
				bad = "leave by a non-member or the owner"
			}
			delete(state, target)
		default:
			bad = "unexpected action"
		}
		if bad != "" {
			t.Fatalf("replay: event %d %s by user %d (%s) of user %d (%s) %s: %s",
				e.Seq, e.Action, index[actor], me, index[target], them, e.Metadata, bad)
		}
		owners := 0
		for _, r := range state {
			if r == "OWNER" {
				owners++
			}
		}
		if owners != 1 {
			t.Fatalf("replay: %d owners after event %d", owners, e.Seq)
		}
	}
	if fmt.Sprint(state) != fmt.Sprint(final) {
		t.Fatalf("replaying the audit log gives %v, the database has %v", state, final)
	}
}

func TestConcurrentAcceptsOfOneInvitation(t *testing.T) {
	owner := srv.RegisterVerified(t, "raceaccowner")
	org := srv.CreateOrg(t, owner, "Race accepts "+uuid.NewString()[:8])
	invitee := srv.RegisterVerified(t, "raceaccinvitee")
	inv, token := srv.Invite(t, owner, org, invitee.Email, "ADMIN")

	const n = 10
	codes := make([]string, n)
	seq := raceMaxSeq(t)
	elapsed := raceRun(t, n, func(i int) {
		r := racePost(t, invitee.AccessToken, fmt.Sprintf("race-accept-%02d", i), raceAcceptMut, map[string]any{"t": token})
		codes[i] = raceCheck(t, "accept", r)
		if codes[i] == "" {
			var out struct {
				AcceptInvitation struct {
					Role string
					User struct{ ID uuid.UUID }
				}
			}
			r.Decode(t, &out)
			if out.AcceptInvitation.Role != "ADMIN" || out.AcceptInvitation.User.ID != invitee.UserID {
				t.Errorf("accept returned %s", r.Raw)
			}
		}
	})
	tally := map[string]int{}
	for _, c := range codes {
		tally[c]++
	}
	t.Logf("%d accepts in %s: %s", n, elapsed.Round(time.Millisecond), raceTally(tally))
	if tally[""] != 1 || tally["CONFLICT"] != n-1 {
		t.Errorf("outcomes %s, want OK=1 CONFLICT=%d", raceTally(tally), n-1)
	}

	var members int
	var role, status string
	var respondedBy *uuid.UUID
	if err := srv.DB.QueryRow(`SELECT (SELECT count(*) FROM organization_members WHERE organization_id = $1 AND user_id = $2),
		coalesce((SELECT role FROM organization_members WHERE organization_id = $1 AND user_id = $2), ''),
		(SELECT status FROM invitations WHERE organization_id = $1 AND id = $3),
		(SELECT responded_by FROM invitations WHERE organization_id = $1 AND id = $3)`, org, invitee.UserID, inv).
		Scan(&members, &role, &status, &respondedBy); err != nil {
		t.Fatal(err)
	}
	if members != 1 || role != "ADMIN" || status != "ACCEPTED" || respondedBy == nil || *respondedBy != invitee.UserID {
		t.Errorf("memberships %d (role %q), invitation %s responded by %v; want 1 ADMIN membership and ACCEPTED by the invitee",
			members, role, status, respondedBy)
	}
	events := raceEvents(t, org, seq)
	if len(events) != 1 || events[0].Action != "invitation.accepted" || events[0].Actor == nil || *events[0].Actor != invitee.UserID {
		t.Errorf("audit events during the race: %+v, want one invitation.accepted by the invitee", events)
	}
}

func TestAcceptRacingRevoke(t *testing.T) {
	owner := srv.RegisterVerified(t, "racearowner")
	org := srv.CreateOrg(t, owner, "Race accept revoke "+uuid.NewString()[:8])
	const rounds = 20
	invitees := make([]*Session, rounds)
	invs := make([]uuid.UUID, rounds)
	tokens := make([]string, rounds)
	var wg sync.WaitGroup
	for k := range rounds {
		wg.Go(func() {
			invitees[k] = srv.RegisterVerified(t, fmt.Sprintf("racear%02d", k))
			invs[k], tokens[k] = srv.Invite(t, owner, org, invitees[k].Email, "MEMBER")
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	wins := map[string]int{}
	var slowest, sum time.Duration
	for k := range rounds {
		seq := raceMaxSeq(t)
		var acc, rev Response
		// Left alone, one side tends to win every round: hold back one or the
		// other by 0 to 4 ms, so that both outcomes come up.
		delay := time.Duration(k/2%5) * time.Millisecond
		elapsed := raceRun(t, 2, func(i int) {
			if i == k%2 {
				time.Sleep(delay)
			}
			if i == 0 {
				acc = racePost(t, invitees[k].AccessToken, "race-ar-accept", raceAcceptMut, map[string]any{"t": tokens[k]})
			} else {
				rev = racePost(t, owner.AccessToken, "race-ar-revoke", raceRevokeMut, map[string]any{"o": org, "i": invs[k]})
			}
		})
		sum += elapsed
		slowest = max(slowest, elapsed)
		ac, rc := raceCheck(t, "accept", acc), raceCheck(t, "revoke", rev)

		var members int
		var status string
		if err := srv.DB.QueryRow(`SELECT (SELECT count(*) FROM organization_members WHERE organization_id = $1 AND user_id = $2),
			(SELECT status FROM invitations WHERE organization_id = $1 AND id = $3)`, org, invitees[k].UserID, invs[k]).
			Scan(&members, &status); err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range raceEvents(t, org, seq) {
			actions = append(actions, e.Action)
		}
		state := fmt.Sprintf("round %d: accept %q, revoke %q, %d membership, invitation %s, events %v", k, ac, rc, members, status, actions)
		switch {
		case ac == "" && rc == "":
			t.Errorf("%s: both succeeded", state)
		case ac == "":
			wins["accept"]++
			if rc != "CONFLICT" || members != 1 || status != "ACCEPTED" || len(actions) != 1 || actions[0] != "invitation.accepted" {
				t.Errorf("%s; want revoke CONFLICT, 1 membership, ACCEPTED, [invitation.accepted]\nrevoke: %s", state, rev.Raw)
			}
		case rc == "":
			wins["revoke"]++
			if ac != "BAD_USER_INPUT" || members != 0 || status != "REVOKED" || len(actions) != 1 || actions[0] != "invitation.revoked" {
				t.Errorf("%s; want accept BAD_USER_INPUT, no membership, REVOKED, [invitation.revoked]\naccept: %s", state, acc.Raw)
			}
		default:
			t.Errorf("%s: neither succeeded\naccept: %s\nrevoke: %s", state, acc.Raw, rev.Raw)
		}
	}
	t.Logf("%d rounds: accept won %d, revoke won %d; %s per round on average, slowest %s",
		rounds, wins["accept"], wins["revoke"], (sum / rounds).Round(time.Millisecond), slowest.Round(time.Millisecond))
}

func TestConcurrentInvitesOfOneEmail(t *testing.T) {
	owner := srv.RegisterVerified(t, "raceinvowner")
	org := srv.CreateOrg(t, owner, "Race invites "+uuid.NewString()[:8])
	email := UniqueEmail("raceinvitee")

	const n = 10
	codes := make([]string, n)
	fields := make([]string, n)
	seq := raceMaxSeq(t)
	elapsed := raceRun(t, n, func(i int) {
		r := racePost(t, owner.AccessToken, fmt.Sprintf("race-invite-%02d", i), raceInviteMut, map[string]any{"o": org, "e": email, "r": "MEMBER"})
		codes[i], fields[i] = raceCheck(t, "invite", r), r.Field()
	})
	tally := map[string]int{}
	for i, c := range codes {
		tally[c]++
		if c == "CONFLICT" && fields[i] != "email" {
			t.Errorf("CONFLICT on field %q, want email", fields[i])
		}
	}
	t.Logf("%d invites in %s: %s", n, elapsed.Round(time.Millisecond), raceTally(tally))
	if tally[""] != 1 || tally["CONFLICT"] != n-1 {
		t.Errorf("outcomes %s, want OK=1 CONFLICT=%d", raceTally(tally), n-1)
	}

	var all, pending, mails int
	if err := srv.DB.QueryRow(`SELECT count(*), count(*) FILTER (WHERE status = 'PENDING'),
		(SELECT count(*) FROM mail_outbox WHERE recipient = $2)
		FROM invitations WHERE organization_id = $1 AND email = $2`, org, email).Scan(&all, &pending, &mails); err != nil {
		t.Fatal(err)
	}
	if all != 1 || pending != 1 || mails != 1 {
		t.Errorf("%d invitations (%d pending) and %d emails queued, want 1, 1 and 1", all, pending, mails)
	}
	events := raceEvents(t, org, seq)
	if len(events) != 1 || events[0].Action != "member.invited" {
		t.Errorf("audit events during the race: %+v, want one member.invited", events)
	}
}

// TestTransferOwnershipWhileThePoolIsBusy makes deterministic the interleaving
// that the mixed race above hits now and then: a valid transfer obtains the
// organization's lock while other mutations of the organization, waiting for that
// lock, hold every other connection of the server's pool. The transfer must still
// finish: nothing may need a second connection while holding the lock.
func TestTransferOwnershipWhileThePoolIsBusy(t *testing.T) {
	owner := srv.RegisterVerified(t, "racepoolowner")
	org := srv.CreateOrg(t, owner, "Race pool "+uuid.NewString()[:8])
	heir := srv.AddMember(t, owner, org, "ADMIN", "racepoolheir")
	member := srv.AddMember(t, owner, org, "MEMBER", "racepoolmember")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := db.Open(ctx, srv.Config.DirectURL(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	waiting := func() int {
		var n int
		if err := admin.GetContext(ctx, &n, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM organizations o WHERE o.id = $1 FOR NO KEY UPDATE%'`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	awaitWaiting := func(want int) int {
		deadline := time.Now().Add(10 * time.Second)
		last, since := -1, time.Now()
		for {
			n := waiting()
			if n != last {
				last, since = n, time.Now()
			}
			// Done when want are waiting, or (want 0) when the count has been stable for a while.
			if (want > 0 && n >= want) || (want == 0 && n > 1 && time.Since(since) > 500*time.Millisecond) {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d requests waiting for the organization lock after 10s", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Hold the organization's lock from outside the server.
	lock, err := admin.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback() //nolint:errcheck
	if _, err := lock.ExecContext(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, org); err != nil {
		t.Fatal(err)
	}

	// The transfer queues first for the lock, then 40 role changes (no-ops, all
	// allowed) queue behind it and take the rest of the pool.
	var wg sync.WaitGroup
	var transfer Response
	wg.Go(func() {
		transfer = racePost(t, owner.AccessToken, "race-pool-transfer", raceTransferMut, map[string]any{"o": org, "u": heir.UserID})
	})
	awaitWaiting(1)
	const n = 40
	others := make([]Response, n)
	for i := range n {
		wg.Go(func() {
			others[i] = racePost(t, heir.AccessToken, fmt.Sprintf("race-pool-%02d", i), raceRoleMut,
				map[string]any{"o": org, "u": member.UserID, "r": "MEMBER"})
		})
	}
	queued := awaitWaiting(0)
	began := time.Now()
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	raceWait(t, &wg, fmt.Sprintf("a transfer and %d role changes queued behind it (%d transactions waiting for the lock)", n, queued))
	t.Logf("%d transactions were waiting for the lock; all %d requests finished %s after it was released",
		queued, n+1, time.Since(began).Round(time.Millisecond))

	if raceCheck(t, "transfer", transfer) != "" {
		t.Errorf("transfer failed: %s", transfer.Raw)
	}
	for i, r := range others {
		if raceCheck(t, "role change", r) != "" {
			t.Errorf("role change %d failed: %s", i, r.Raw)
		}
	}
	if r := raceRoles(t, org); r[heir.UserID] != "OWNER" || r[owner.UserID] != "ADMIN" || r[member.UserID] != "MEMBER" {
		t.Errorf("roles after the transfer: %v", r)
	}
}

// TestConcurrentAcceptsWithOneSeatLeft: ten invitations sent while seats were
// free, then the limit lowered to one free seat: of ten concurrent
// acceptances exactly one makes a member, and the others are QUOTA_EXCEEDED
// with their invitations still pending.
func TestConcurrentAcceptsWithOneSeatLeft(t *testing.T) {
	owner := srv.RegisterVerified(t, "raceseatowner")
	org := srv.CreateOrg(t, owner, "Race seats "+uuid.NewString()[:8])
	const n = 10
	invitees := make([]*Session, n)
	tokens := make([]string, n)
	for i := range n {
		invitees[i] = srv.RegisterVerified(t, "raceseat")
		_, tokens[i] = srv.Invite(t, owner, org, invitees[i].Email, "MEMBER")
	}
	if _, err := srv.DB.Exec(`UPDATE organization_limits SET seats = 2 WHERE organization_id = $1`, org); err != nil {
		t.Fatal(err)
	}
	codes := make([]string, n)
	elapsed := raceRun(t, n, func(i int) {
		codes[i] = raceCheck(t, "accept", racePost(t, invitees[i].AccessToken, fmt.Sprintf("race-seat-%02d", i), raceAcceptMut, map[string]any{"t": tokens[i]}))
	})
	tally := map[string]int{}
	for _, c := range codes {
		tally[c]++
	}
	t.Logf("%d accepts in %s: %s", n, elapsed.Round(time.Millisecond), raceTally(tally))
	if tally[""] != 1 || tally["QUOTA_EXCEEDED"] != n-1 {
		t.Errorf("outcomes %s, want OK=1 QUOTA_EXCEEDED=%d", raceTally(tally), n-1)
	}
	var members, pending int
	if err := srv.DB.QueryRow(`SELECT (SELECT count(*) FROM organization_members WHERE organization_id = $1),
		(SELECT count(*) FROM invitations WHERE organization_id = $1 AND status = 'PENDING')`, org).Scan(&members, &pending); err != nil {
		t.Fatal(err)
	}
	if members != 2 || pending != n-1 {
		t.Errorf("%d members and %d pending invitations, want 2 and %d", members, pending, n-1)
	}
}
