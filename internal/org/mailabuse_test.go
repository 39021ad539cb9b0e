package org_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	. "tenantgraph/internal/apitest"
	"tenantgraph/internal/org"
)

// The invitation mail and creation limits (org.DefaultMailLimits and
// org.DefaultCreateLimit, docs/api.md, "Invitation mail limits" and "Organizations per user").
const (
	mailsPerRecipient = 3
	mailsPerOrg       = 50
	mailsPerInviter   = 100
	orgsPerUser       = 20
)

// outboxCount counts the mails queued (sent or not) to any of emails.
func outboxCount(t *testing.T, emails ...string) int {
	t.Helper()
	var n int
	if err := srv.DB.Get(&n, `SELECT count(*) FROM mail_outbox WHERE recipient = ANY($1)`, pq.Array(emails)); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantRateLimited checks r is RATE_LIMITED, saying which limit, and that it
// changed nothing in org and queued no mail to email.
func wantRateLimited(t *testing.T, org uuid.UUID, email, says string, post func() Response) {
	t.Helper()
	before, mails := srv.TenancyDigest(t, org), outboxCount(t, email)
	r := post()
	WantCode(t, r, "RATE_LIMITED")
	if !strings.Contains(r.Errors[0].Message, says) {
		t.Errorf("message %q does not say %q", r.Errors[0].Message, says)
	}
	if after := srv.TenancyDigest(t, org); after != before {
		t.Errorf("a refused mail changed the organization:\n%s\n%s", before, after)
	}
	if n := outboxCount(t, email); n != mails {
		t.Errorf("a refused mail was queued: %d mails to %s, had %d", n, email, mails)
	}
}

func TestInvitationMailsPerRecipientAreLimited(t *testing.T) {
	// Not parallel: it moves the server's clock.
	owner := srv.RegisterVerified(t, "mailcapowner")
	o := srv.CreateOrg(t, owner, "Mail cap "+uuid.NewString()[:8])
	victim := UniqueEmail("mailcapvictim")

	// The invitation and two resends: three mails within the hour.
	inv, _ := srv.Invite(t, owner, o, victim, "MEMBER")
	for range mailsPerRecipient - 1 {
		MustOK(t, srv.Post(t, owner.AccessToken, resendInv, map[string]any{"o": o, "i": inv}))
	}
	srv.WaitMailN(t, victim, "invited", mailsPerRecipient)

	// A fourth is refused, whether a resend or, after a revoke, a new invitation.
	wantRateLimited(t, o, victim, "3 invitation emails", func() Response {
		return srv.Post(t, owner.AccessToken, resendInv, map[string]any{"o": o, "i": inv})
	})
	MustOK(t, srv.Post(t, owner.AccessToken, revokeInv, map[string]any{"o": o, "i": inv}))
	wantRateLimited(t, o, victim, "3 invitation emails", func() Response {
		return srv.Post(t, owner.AccessToken, inviteMut, map[string]any{"o": o, "e": strings.ToUpper(victim)})
	})
	// Another ADMIN of the organization shares its limit.
	admin := srv.AddMember(t, owner, o, "ADMIN", "mailcapadmin")
	wantRateLimited(t, o, victim, "3 invitation emails", func() Response {
		return srv.Post(t, admin.AccessToken, inviteMut, map[string]any{"o": o, "e": victim})
	})
	// The limit is per address and per organization: another address, and
	// another organization inviting this one, are not held back.
	srv.Invite(t, owner, o, UniqueEmail("mailcapother"), "MEMBER")
	other := srv.RegisterVerified(t, "mailcapowner2")
	srv.Invite(t, other, srv.CreateOrg(t, other, "Mail cap other "+uuid.NewString()[:8]), victim, "MEMBER")

	// An hour later the oldest mails have left the window.
	defer srv.Clock.Advance(time.Hour + time.Second)()
	owner.AccessToken = srv.Login(t, owner.Email, owner.Password).Access
	_, tok := srv.Invite(t, owner, o, victim, "MEMBER")
	if tok == "" {
		t.Fatal("no link in the mail sent an hour later")
	}
	if n := outboxCount(t, victim); n != mailsPerRecipient+2 {
		t.Fatalf("%d mails to the victim, want %d from the first organization and 1 from the other", n, mailsPerRecipient+2)
	}
	var sent []string
	if err := srv.DB.Select(&sent, `SELECT action FROM audit_events WHERE organization_id = $1
		AND action IN ('member.invited', 'invitation.resent') AND metadata->>'email' = $2 ORDER BY seq`, o, victim); err != nil {
		t.Fatal(err)
	}
	if want := []string{"member.invited", "invitation.resent", "invitation.resent", "member.invited"}; fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Fatalf("invitation mail events to the victim = %v, want %v", sent, want)
	}
}

func TestInvitationMailsPerOrganizationAreLimited(t *testing.T) {
	// Not parallel: it moves the server's clock.
	owner := srv.RegisterVerified(t, "orgcapowner")
	o := srv.CreateOrg(t, owner, "Org cap "+uuid.NewString()[:8])
	const q = `mutation($o: ID!, $e: String!) { inviteMember(orgId: $o, email: $e) { id } }`
	var emails []string
	var first uuid.UUID
	for i := range mailsPerOrg - 1 {
		e := UniqueEmail(fmt.Sprintf("orgcap%02d", i))
		var out struct{ InviteMember struct{ ID uuid.UUID } }
		MustOK(t, srv.Post(t, owner.AccessToken, q, map[string]any{"o": o, "e": e})).Decode(t, &out)
		if i == 0 {
			first = out.InviteMember.ID
		}
		emails = append(emails, e)
	}
	// A resend counts too: the 50th mail.
	MustOK(t, srv.Post(t, owner.AccessToken, resendInv, map[string]any{"o": o, "i": first}))
	if n := outboxCount(t, emails...); n != mailsPerOrg {
		t.Fatalf("%d mails queued, want %d", n, mailsPerOrg)
	}

	stranger := UniqueEmail("orgcapstranger")
	wantRateLimited(t, o, stranger, "50 invitation emails", func() Response {
		return srv.Post(t, owner.AccessToken, q, map[string]any{"o": o, "e": stranger})
	})
	wantRateLimited(t, o, emails[1], "50 invitation emails", func() Response {
		return srv.Post(t, owner.AccessToken, resendInv, map[string]any{"o": o, "i": first})
	})
	// Other organizations are not held back.
	srv.Invite(t, owner, srv.CreateOrg(t, owner, "Org cap other "+uuid.NewString()[:8]), stranger, "MEMBER")

	defer srv.Clock.Advance(time.Hour + time.Second)()
	owner.AccessToken = srv.Login(t, owner.Email, owner.Password).Access
	srv.Invite(t, owner, o, stranger, "MEMBER")
}

// TestConcurrentResendsStayWithinTheLimit: the count is taken under the
// organization's lock, so concurrent resends cannot all slip under it.
func TestConcurrentResendsStayWithinTheLimit(t *testing.T) {
	owner := srv.RegisterVerified(t, "raceresendowner")
	o := srv.CreateOrg(t, owner, "Race resends "+uuid.NewString()[:8])
	email := UniqueEmail("raceresend")
	inv, _ := srv.Invite(t, owner, o, email, "MEMBER")

	const n = 10
	codes := make([]string, n)
	raceRun(t, n, func(i int) {
		codes[i] = raceCheck(t, "resend", racePost(t, owner.AccessToken, fmt.Sprintf("race-resend-%02d", i), resendInv, map[string]any{"o": o, "i": inv}))
	})
	tally := map[string]int{}
	for _, c := range codes {
		tally[c]++
	}
	if tally[""] != mailsPerRecipient-1 || tally["RATE_LIMITED"] != n-(mailsPerRecipient-1) {
		t.Errorf("outcomes %s, want OK=%d RATE_LIMITED=%d", raceTally(tally), mailsPerRecipient-1, n-(mailsPerRecipient-1))
	}
	if got := outboxCount(t, email); got != mailsPerRecipient {
		t.Errorf("%d mails queued to %s, want %d", got, email, mailsPerRecipient)
	}
}

// linkLike finds what mail programs turn into links in plain text: a scheme
// ("https://"), "www.", or a domain name (labels joined by dots, full-width and
// ideographic ones included, ending in a label of letters), which also covers
// an address like someone@evil.example.
var linkLike = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*://|\bwww[.。．｡]|[\p{L}\p{N}_-]+(?:[.。．｡][\p{L}\p{N}_-]+)*[.。．｡]\p{L}{2,}`)

// TestInvitationMailShowsTheOrganizationNameAsQuotedData: the name, the only
// text of the mail a user chose, is quoted, escaped and cannot be read as a
// link, and stands apart from the real link.
func TestInvitationMailShowsTheOrganizationNameAsQuotedData(t *testing.T) {
	t.Parallel()
	owner := srv.RegisterVerified(t, "phishowner")
	tag := uuid.NewString()[:6]
	for _, c := range []struct{ name, quoted string }{
		{"www.evil" + tag + ".example", `"www[.]evil` + tag + `[.]example"`},
		{`Security team ` + tag + `: "verify" at https://evil.example/login?next=1`,
			`"Security team ` + tag + `: \"verify\" at https[://]evil[.]example/login?next=1"`},
		{"Write to help@paypal" + tag + ".example", `"Write to help[@]paypal` + tag + `[.]example"`},
		{"evil" + tag + "。example\u202egnp.exe", `"evil` + tag + `[。]example\u202egnp[.]exe"`},
		{"Acme " + tag + " Inc.", `"Acme ` + tag + ` Inc."`},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := srv.CreateOrg(t, owner, c.name)
			email := UniqueEmail("phishee")
			srv.Invite(t, owner, o, email, "MEMBER")
			m := srv.WaitMail(t, email, "invited")

			if want := "You are invited to join the organization " + c.quoted + " on tenantgraph"; m.Subject != want {
				t.Errorf("subject = %q\nwant      %q", m.Subject, want)
			}
			if l := linkLike.FindString(m.Subject); l != "" {
				t.Errorf("the subject holds %q, which a mail program would make a link: %q", l, m.Subject)
			}
			lines := strings.Split(m.Body, "\n")
			nameAt, linkAt := -1, -1
			for i, l := range lines {
				switch {
				case strings.TrimSpace(l) == c.quoted:
					nameAt = i
				case strings.HasPrefix(l, "http://app.test/accept-invitation?token="):
					linkAt = i
				}
				if strings.Contains(l, c.name) && c.name != strings.Trim(c.quoted, `"`) {
					t.Errorf("line %d holds the name unquoted: %q", i, l)
				}
			}
			if nameAt < 0 || linkAt < 0 {
				t.Fatalf("no line with only %s, or no link line, in:\n%s", c.quoted, m.Body)
			}
			// The name is not next to the link: text stands between them.
			between := strings.TrimSpace(strings.Join(lines[min(nameAt, linkAt)+1:max(nameAt, linkAt)], "\n"))
			if len(between) < 20 {
				t.Errorf("the name (line %d) is next to the link (line %d):\n%s", nameAt, linkAt, m.Body)
			}
			// Nothing but the link itself looks like a link.
			for i, l := range lines {
				if i == linkAt {
					continue
				}
				if hit := linkLike.FindString(l); hit != "" {
					t.Errorf("line %d holds %q, which a mail program would make a link: %q", i, hit, l)
				}
			}
		})
	}
}

// docs/api.md and this test name the same numbers.
func TestDefaultMailLimits(t *testing.T) {
	if l := org.DefaultMailLimits(); l.PerRecipient != mailsPerRecipient || l.PerOrganization != mailsPerOrg ||
		l.PerInviter != mailsPerInviter || l.Window != time.Hour {
		t.Fatalf("DefaultMailLimits() = %+v", l)
	}
	if l := org.DefaultCreateLimit(); l.PerUser != orgsPerUser || l.Window != 24*time.Hour {
		t.Fatalf("DefaultCreateLimit() = %+v", l)
	}
}

// inviteMany has inviter invite n new addresses into o, each a mail.
func inviteMany(t *testing.T, inviter *Session, o uuid.UUID, tag string, n int) {
	t.Helper()
	for i := range n {
		MustOK(t, srv.Post(t, inviter.AccessToken, inviteMut, map[string]any{"o": o, "e": UniqueEmail(fmt.Sprintf("%s%02d", tag, i))}))
	}
}

// TestInvitationMailsPerInviterAreLimited: creating organizations does not
// multiply an inviter's mail budget. One user's invitation mails from all the
// organizations they administer are capped, and concurrent invitations from
// different organizations (each under its own organization's lock) cannot all
// slip under the cap.
func TestInvitationMailsPerInviterAreLimited(t *testing.T) {
	// Not parallel: it moves the server's clock.
	owner := srv.RegisterVerified(t, "invitercapowner")
	const racers = 10
	orgs := make([]uuid.UUID, 2+racers)
	for i := range orgs {
		orgs[i] = srv.CreateOrg(t, owner, fmt.Sprintf("Inviter cap %02d %s", i, uuid.NewString()[:8]))
	}
	// One more organization, with a second admin: the owner's invitation of
	// the admin is a mail, then 50 + 44 from the first two organizations, each
	// under its own limit: 95 in all.
	shared := srv.CreateOrg(t, owner, "Inviter cap shared "+uuid.NewString()[:8])
	admin := srv.AddMember(t, owner, shared, "ADMIN", "invitercapadmin")
	inviteMany(t, owner, orgs[0], "invitercapa", mailsPerOrg)
	inviteMany(t, owner, orgs[1], "invitercapb", mailsPerInviter-mailsPerOrg-6)

	// Ten invitations at once, each from another organization: exactly the
	// five left of the inviter's budget are sent.
	codes := make([]string, racers)
	emails := make([]string, racers)
	for i := range emails {
		emails[i] = UniqueEmail(fmt.Sprintf("invitercaprace%02d", i))
	}
	raceRun(t, racers, func(i int) {
		codes[i] = raceCheck(t, "invite", racePost(t, owner.AccessToken, fmt.Sprintf("race-inviter-%02d", i), inviteMut,
			map[string]any{"o": orgs[2+i], "e": emails[i]}))
	})
	tally := map[string]int{}
	for _, c := range codes {
		tally[c]++
	}
	if tally[""] != 5 || tally["RATE_LIMITED"] != racers-5 {
		t.Errorf("outcomes %s, want OK=5 RATE_LIMITED=%d", raceTally(tally), racers-5)
	}
	if n := outboxCount(t, emails...); n != 5 {
		t.Errorf("%d of the racing mails queued, want 5", n)
	}

	// Over the cap, from an organization far under its own limits.
	stranger := UniqueEmail("invitercapstranger")
	wantRateLimited(t, shared, stranger, "100 invitation emails from your organizations", func() Response {
		return srv.Post(t, owner.AccessToken, inviteMut, map[string]any{"o": shared, "e": stranger})
	})
	// The cap is the inviter's: another admin of that organization still invites.
	srv.Invite(t, admin, shared, stranger, "MEMBER")

	defer srv.Clock.Advance(time.Hour + time.Second)()
	owner.AccessToken = srv.Login(t, owner.Email, owner.Password).Access
	srv.Invite(t, owner, shared, UniqueEmail("invitercaplater"), "MEMBER")
}

// TestOrganizationsPerUserAreLimited: a user creates at most 20 organizations
// a day, also when the creations race; over it nothing is created.
func TestOrganizationsPerUserAreLimited(t *testing.T) {
	// Not parallel: it moves the server's clock.
	u := srv.RegisterVerified(t, "orgcreatecap")
	const n = orgsPerUser + 5
	codes := make([]string, n)
	raceRun(t, n, func(i int) {
		codes[i] = raceCheck(t, "create", racePost(t, u.AccessToken, fmt.Sprintf("race-create-%02d", i),
			`mutation($n: String!) { createOrganization(input: {name: $n}) { id } }`,
			map[string]any{"n": fmt.Sprintf("Create cap %02d %s", i, uuid.NewString()[:8])}))
	})
	tally := map[string]int{}
	for _, c := range codes {
		tally[c]++
	}
	if tally[""] != orgsPerUser || tally["RATE_LIMITED"] != n-orgsPerUser {
		t.Errorf("outcomes %s, want OK=%d RATE_LIMITED=%d", raceTally(tally), orgsPerUser, n-orgsPerUser)
	}
	owned := func() int {
		var k int
		if err := srv.DB.Get(&k, `SELECT count(*) FROM organization_members WHERE user_id = $1 AND role = 'OWNER'`, u.UserID); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := owned(); k != orgsPerUser {
		t.Fatalf("the user owns %d organizations, want %d", k, orgsPerUser)
	}
	r := srv.Post(t, u.AccessToken, `mutation { createOrganization(input: {name: "One too many"}) { id } }`, nil)
	WantCode(t, r, "RATE_LIMITED")
	if !strings.Contains(r.Errors[0].Message, "20 organizations in the last 24 hours") {
		t.Errorf("message %q does not name the limit", r.Errors[0].Message)
	}
	if k := owned(); k != orgsPerUser {
		t.Fatalf("a refused creation created something: %d organizations", k)
	}

	defer srv.Clock.Advance(24*time.Hour + time.Second)()
	u.AccessToken = srv.Login(t, u.Email, u.Password).Access
	srv.CreateOrg(t, u, "A day later "+uuid.NewString()[:8])
}
