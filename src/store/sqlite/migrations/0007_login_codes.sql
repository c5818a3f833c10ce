-- One-time sign-in codes (login links, local mode): the id of every code
-- redeemed, kept until the code would be refused by its own expiry anyway
-- (`valid_until`, Unix milliseconds), so that each code is redeemed once.
CREATE TABLE login_codes_used (
    code_id     TEXT PRIMARY KEY,
    valid_until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX login_codes_used_by_expiry ON login_codes_used (valid_until);
