-- Signing a user out everywhere (POST /v1/auth/logout_all, a password reset) must stop their
-- access tokens at once, and those are stateless JWTs. So each such sign-out raises the
-- user's watermark: an access token of the user whose `iat` (unix seconds) is below
-- `valid_after` is refused (server/auth/revocation.py). `signed_out_at` is when the last
-- sign-out happened (the server's clock, to the microsecond): a login or refresh whose
-- credentials were checked before it issues nothing. A user who never signed out everywhere
-- has no row.
CREATE TABLE token_watermarks (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    valid_after   bigint NOT NULL CHECK (valid_after >= 0),
    signed_out_at timestamptz NOT NULL
);
