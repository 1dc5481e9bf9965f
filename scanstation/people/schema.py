"""people.db's schema as numbered migrations (PRAGMA user_version counts those that ran).

people.db is plaintext (no ACR data lives here): accounts with their argon2id hashes, supervisors' and
unit heads' key pairs (the private half wrapped under their password), the key slots and the recovery
slot that open the station secret, and the sign-in failure counts of the throttle.  It is a file of its
own, not a table of station.db, because station.db is encrypted with a key derived from the station
secret: sign-in and unlock must work before that key exists.
"""

from __future__ import annotations

# Each entry runs once, in order.  Never edit a shipped entry: append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,          -- casefolded name: names are unique regardless of case
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,            -- argon2id PHC string
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        password_changed_at TEXT NOT NULL,
        password_set_by TEXT NOT NULL,
        public_key TEXT,                        -- age1... (supervisors and unit heads only)
        wrapped_private_key TEXT                -- key_wrap text: AES-256-GCM under argon2id(password)
    );
    CREATE TABLE sign_in_failures (
        name_key TEXT PRIMARY KEY,              -- per name typed, known or not: the throttle must not tell
        failures INTEGER NOT NULL,
        last_failure TEXT NOT NULL
    );
    CREATE TABLE key_slots (
        person_id INTEGER PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,                -- the public key the slot was made for
        slot BLOB NOT NULL,                     -- age file: the station secret encrypted to that recipient
        created_at TEXT NOT NULL
    );
    CREATE TABLE recovery_slot (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        wrapped TEXT NOT NULL,                  -- key_wrap text: the station secret under argon2id(code)
        created_at TEXT NOT NULL
    );
    """,
    # 2: the latest signed audit checkpoint, kept outside audit.db: cutting back audit.db alone (entries and
    # checkpoints together) is caught at the next unlock and by ``audit verify``.
    """
    CREATE TABLE audit_witness (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        note TEXT NOT NULL,
        size INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: the unit head's DSC certificate (issue 15), bound by the admin: at sign-off the token's certificate must
    # be this one (issuer + serial, and the public key).  Only unit-head accounts have one.
    """
    CREATE TABLE signer_certificates (
        person_id INTEGER PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
        subject TEXT NOT NULL,                  -- RFC 4514, for people and messages
        issuer TEXT NOT NULL,                   -- RFC 4514
        issuer_der_sha256 TEXT NOT NULL,        -- hex SHA-256 of the issuer Name's DER (the exact comparison)
        serial TEXT NOT NULL,                   -- hex, lower case, no leading zeros
        spki_sha256 TEXT NOT NULL,              -- hex SHA-256 of the SubjectPublicKeyInfo DER
        certificate_sha256 TEXT NOT NULL,       -- hex SHA-256 of the certificate DER
        pem TEXT NOT NULL,
        bound_at TEXT NOT NULL,
        bound_by TEXT NOT NULL
    );
    """,
]
