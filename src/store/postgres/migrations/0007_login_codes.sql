-- catalytics schema, PostgreSQL, version 7.
--
-- One-time sign-in codes (login links, local mode): the id of every code
-- redeemed, kept until the code would be refused by its own expiry anyway
-- (`valid_until`, Unix milliseconds), so that each code is redeemed once,
-- whichever replica it reaches.
CREATE TABLE login_codes_used (
    code_id     text PRIMARY KEY,
    valid_until bigint NOT NULL
);
CREATE INDEX login_codes_used_by_expiry ON login_codes_used (valid_until);
