-- +goose Up
CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    recipient       text        NOT NULL CHECK (recipient <> ''),
    subject         text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX mail_outbox_pending_idx ON mail_outbox (next_attempt_at, id) WHERE status = 'pending';

-- +goose Down
DROP TABLE mail_outbox;
