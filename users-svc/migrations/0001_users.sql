-- 0001: the users table. The same rules as users.proto and src/usr_valid.c,
-- enforced here too so no writer (psql included) can store a malformed row.
CREATE TABLE users (
  uuid            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  display_name    text        NOT NULL,
  handle          text        NOT NULL,
  email           text        NOT NULL,
  cognito_user_id text        NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_handle_format
    CHECK (handle ~ '^[A-Za-z0-9_]{1,32}$'),
  CONSTRAINT users_display_name_length
    CHECK (char_length(display_name) BETWEEN 1 AND 100),
  -- Not blank: the white space list of lib/core utf8_is_blank().
  CONSTRAINT users_display_name_not_blank
    CHECK (display_name !~ '^[ \t\n\v\f\r\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$'),
  -- 3..254 bytes, one '@' with text on both sides, no space or control characters.
  CONSTRAINT users_email_format
    CHECK (octet_length(email) BETWEEN 3 AND 254
           AND email ~ '^[^@]+@[^@]+$'
           AND email !~ '[\x01-\x20\x7f\u0080-\u00a0]'),
  CONSTRAINT users_cognito_user_id_format
    CHECK (cognito_user_id ~ '^[A-Za-z0-9_-]{1,128}$')
);

-- Handles are unique case-insensitively: "Bayko" and "bayko" are one user.
-- Lookups use lower(handle), so this index serves them too.
CREATE UNIQUE INDEX users_handle_lower_key ON users (lower(handle));

-- A Cognito sub links to at most one user; NULL (not linked yet) is allowed
-- any number of times.
ALTER TABLE users ADD CONSTRAINT users_cognito_user_id_key UNIQUE (cognito_user_id);
