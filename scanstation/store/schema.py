"""The station database's schema as numbered migrations (PRAGMA user_version counts those that ran)."""

from __future__ import annotations

# Each entry runs once, in order; PRAGMA user_version records how many have run.  Never edit a
# shipped entry: append a new one, so every station's database converges on the same schema.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL,
        operator TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        seq INTEGER NOT NULL,
        employee_code TEXT NOT NULL DEFAULT '',
        employee_name TEXT NOT NULL DEFAULT '',
        rank TEXT NOT NULL DEFAULT '',
        acr_period TEXT NOT NULL DEFAULT '',
        pdf_object TEXT,
        UNIQUE (batch_id, seq)
    );
    CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        ct_sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE pages (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        seq INTEGER NOT NULL,
        source_key TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        side TEXT NOT NULL,
        device TEXT NOT NULL,
        captured_at TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        dpi INTEGER NOT NULL,
        mode TEXT NOT NULL,
        raw_object TEXT NOT NULL REFERENCES objects(id),
        state TEXT NOT NULL,
        ocr_state TEXT NOT NULL,
        document_id INTEGER REFERENCES documents(id),
        position INTEGER,
        image_object TEXT REFERENCES objects(id),
        ocr_object TEXT REFERENCES objects(id),
        ocr_pdf_object TEXT REFERENCES objects(id),
        ocr_attempts INTEGER NOT NULL DEFAULT 0,
        ocr_error TEXT NOT NULL DEFAULT '',
        analysis TEXT NOT NULL DEFAULT '{}',
        flags TEXT NOT NULL DEFAULT '[]',
        UNIQUE (batch_id, source_key),
        UNIQUE (batch_id, seq)
    );
    CREATE INDEX pages_state ON pages (state, ocr_state);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 2: issue 6 - per-batch keys (crypto-shredding), sealed packages, the upload queue.
    """
    ALTER TABLE batches ADD COLUMN uid TEXT;
    CREATE TABLE batch_keys (
        batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
        recipient TEXT NOT NULL,
        wrapped BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE packages (
        batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
        package_id TEXT NOT NULL,
        file TEXT NOT NULL,
        manifest_object TEXT REFERENCES objects(id),
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE uploads (
        batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
        state TEXT NOT NULL,
        url TEXT,
        confirmed_offset INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        receipt BLOB,
        receipt_id TEXT,
        received_at TEXT,
        purge_after TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: the server's Upload-Expires for the upload URL (station clock, ISO 8601), kept across restarts.
    """
    ALTER TABLE uploads ADD COLUMN expires TEXT;
    """,
    # 4: issue 13 - audit entries live in the audit trail (audit.db: Merkle leaves, signed checkpoints, personal
    # fields sealed); wave 1's hash-chained table, personal data in its details, goes (its size and head hash are
    # recorded in the new trail first; secure_delete zeroes its pages).
    """
    DROP TABLE IF EXISTS audit;
    """,
    # 5: issue 13 - who captured each page (the four-eyes rules and an operator's own-page view need it).
    """
    ALTER TABLE pages ADD COLUMN captured_by TEXT NOT NULL DEFAULT '';
    """,
    # 6: issue 14 - the unit's roster (personal data: it lives here, in the SQLCipher store, like all of it) and
    # the validated index of an ACR file: its period as dates, "not in roster" with the operator's reason, and
    # the flags raised on the file itself (not_in_roster, duplicate).  A roster re-import keeps people who left
    # the export (active = 0): ACR files of staff transferred out are still scanned.  A purge blanks the index
    # but keeps the period's dates and a keyed digest of the code (employee_digest): the ACR still counts as
    # filed for the duplicate check, and the code is not kept.
    """
    CREATE TABLE roster_imports (
        id INTEGER PRIMARY KEY,
        imported_at TEXT NOT NULL,
        imported_by TEXT NOT NULL,
        file_sha256 TEXT NOT NULL,
        rows INTEGER NOT NULL,
        added INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        deactivated INTEGER NOT NULL
    );
    CREATE TABLE roster (
        employee_code TEXT PRIMARY KEY,
        name_hi TEXT NOT NULL DEFAULT '',
        name_en TEXT NOT NULL DEFAULT '',
        rank TEXT NOT NULL DEFAULT '',
        unit TEXT NOT NULL DEFAULT '',
        birth_date TEXT,
        joining_date TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        import_id INTEGER NOT NULL REFERENCES roster_imports(id)
    );
    ALTER TABLE documents ADD COLUMN period_start TEXT;
    ALTER TABLE documents ADD COLUMN period_end TEXT;
    ALTER TABLE documents ADD COLUMN not_in_roster TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE documents ADD COLUMN indexed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN removed TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN duplicate_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN employee_digest TEXT NOT NULL DEFAULT '';
    CREATE INDEX documents_employee ON documents (employee_code);
    CREATE INDEX documents_employee_digest ON documents (employee_digest);
    """,
    # 7: issue 14 - verification.  A page's current verdict (its history is in the audit trail); which pages
    # were served to whom (approval needs every page served to the approving supervisor); verdicts on flags
    # (a page verdict covers that page's flags; a document's flags get their own); quarter turns a supervisor
    # applied; deletion with a reason (kept in the vault until purge, never uploaded); a rescan replacing a
    # page in place; the reasons a batch was returned with.  page_views.how: "screen" (the image was served) or
    # "script" (a scripted `review` from a shell, which never showed it: kept apart so it can be reported).
    # batches.closed_by/at: who ended capture last (the supervisors' queue); approved_by/at: who approved (the
    # sign-off's four-eyes rule).
    """
    ALTER TABLE batches ADD COLUMN closed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE batches ADD COLUMN closed_at TEXT;
    ALTER TABLE batches ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE batches ADD COLUMN approved_at TEXT;
    ALTER TABLE pages ADD COLUMN rotation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE pages ADD COLUMN deleted_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE pages ADD COLUMN replaced_by INTEGER REFERENCES pages(id);
    CREATE TABLE page_verdicts (
        page_id INTEGER PRIMARY KEY REFERENCES pages(id),
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        given_by TEXT NOT NULL,
        given_at TEXT NOT NULL
    );
    CREATE TABLE page_views (
        page_id INTEGER NOT NULL REFERENCES pages(id),
        person TEXT NOT NULL,
        first_at TEXT NOT NULL,
        how TEXT NOT NULL DEFAULT 'screen',
        PRIMARY KEY (page_id, person)
    );
    CREATE TABLE flag_verdicts (
        subject TEXT NOT NULL,
        flag TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        given_by TEXT NOT NULL,
        given_at TEXT NOT NULL,
        PRIMARY KEY (subject, flag)
    );
    CREATE TABLE batch_returns (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        returned_by TEXT NOT NULL,
        returned_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        closed_at TEXT
    );
    """,
    # 8: issue 16 - the compact page: the cleaned page encoded for the archive (a one-page PDF, vault kind
    # "compact"), made by the processing worker beside the lossless cleaned image; the ACR files' PDFs are
    # built from it.  Objects destroyed on purpose before the purge (the raw capture once its batch is sealed,
    # unless upload.include_raw) keep their row, so page rows still name them and vault checks know they are
    # gone by design (destroyed_at, destroyed_reason).  package_objects: the objects made only for a batch's
    # package (one-page PDF/As of unfiled pages, and of raw and cleaned pages with upload.include_raw),
    # replaced at every seal and purged with the batch.
    """
    ALTER TABLE pages ADD COLUMN compact_object TEXT REFERENCES objects(id);
    ALTER TABLE objects ADD COLUMN destroyed_at TEXT;
    ALTER TABLE objects ADD COLUMN destroyed_reason TEXT NOT NULL DEFAULT '';
    CREATE TABLE package_objects (
        batch_id INTEGER NOT NULL REFERENCES batches(id),
        page_id INTEGER NOT NULL REFERENCES pages(id),
        role TEXT NOT NULL,
        object_id TEXT NOT NULL REFERENCES objects(id),
        PRIMARY KEY (page_id, role)
    );
    CREATE INDEX package_objects_batch ON package_objects (batch_id);
    """,
]
