-- +goose Up
-- Invitation mails (inviteMember, resendInvitation) are capped per organization and per
-- recipient over a sliding hour (internal/org, MailLimits), counted from the audit log
-- inside the mutation's transaction. This index holds only those events, by organization
-- then time, so a count reads one window of one organization: at most the cap's rows.
CREATE INDEX audit_events_invitation_mail_idx ON audit_events (organization_id, created_at)
    WHERE action IN ('member.invited', 'invitation.resent');

-- +goose Down
DROP INDEX audit_events_invitation_mail_idx;
