-- +goose Up
-- An email address holds no control character (C0, DEL or C1), as NormalizeEmail
-- requires; names already refuse them.
ALTER TABLE users ADD CONSTRAINT users_email_no_control CHECK (email !~ '[\x01-\x1f\x7f-\x9f]');
ALTER TABLE invitations ADD CONSTRAINT invitations_email_no_control CHECK (email !~ '[\x01-\x1f\x7f-\x9f]');

-- +goose Down
ALTER TABLE invitations DROP CONSTRAINT invitations_email_no_control;
ALTER TABLE users DROP CONSTRAINT users_email_no_control;
