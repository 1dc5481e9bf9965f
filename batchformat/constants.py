"""The package format's names, member layout and the size limits a reader enforces."""

from __future__ import annotations

import re

# Version 2 (issue 13): the manifest carries the station's signed audit checkpoint and consistency proofs
# (``audit_head`` an object, ``audit_log``); readers accept only this package version.  Receipts of version 2
# carry the checkpoint the portal acknowledged; version 1 receipts (of version 1 packages) still verify.
FORMAT = "scanstation-package/2"
# Manifest version 3 (issue 16): a page entry's ``raw`` may be null (the raw capture need not travel: by
# default a filed page travels only inside its ACR file's PDF/A).  Version 2 (raw required) is still read, so
# packages sealed before the upgrade are accepted; writers write version 3.
MANIFEST_FORMAT = "scanstation-manifest/3"
MANIFEST_FORMAT_V2 = "scanstation-manifest/2"
MANIFEST_FORMATS = (MANIFEST_FORMAT_V2, MANIFEST_FORMAT)
RECEIPT_FORMAT = "scanstation-receipt/2"
FORMAT_V1 = "scanstation-package/1"
RECEIPT_FORMAT_V1 = "scanstation-receipt/1"
MEDIA_TYPE = "application/x-scanstation-package"

ENVELOPE_NAME = "scanstation-package.json"
MANIFEST_NAME = "manifest.json.age"
STATION_SIGNATURE_NAME = "signatures/station.json"
OBJECT_PREFIX = "objects/"
OBJECT_SUFFIX = ".age"

# Size limits a reader enforces before reading a member into memory (hostile input must not make
# the portal allocate gigabytes).  Object ciphertexts are single pages / PDFs: < 50 MB in practice (a compact
# page is ~0.1 MB, an ACR file's PDF a few MB).
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_OBJECT_BYTES = 256 * 1024 * 1024
MAX_SIGNATURE_MEMBERS = 16
# Objects per package: a batch of 2,000 pages (at most raw, image and OCR text each, plus the PDFs) stays well
# below.
MAX_OBJECTS = 20_000
# age headers: each recipient stanza is an X25519 (or scrypt) attempt per identity; the station encrypts to
# the portal and the batch key, so 4 recipients leave room; one grease stanza of rage's is extra.
AGE_MAGIC = b"age-encryption.org/v1\n"
MAX_AGE_RECIPIENTS = 4
MAX_AGE_STANZAS = 6
MAX_AGE_HEADER_BYTES = 16 * 1024
MAX_RECEIPT_BYTES = 16 * 1024 * 1024
MAX_NOTE_TEXT = 64 * 1024  # a signed checkpoint note in a manifest or receipt (batchformat.checkpoints)
# tarfile pads archives to 20 blocks; allow that much (and a bit) of zeros after the end marker.
MAX_TRAILING_ZERO_BYTES = 64 * 1024

BLOCK = 512
COPY_CHUNK = 1024 * 1024

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
KIND = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
DOC_ID = re.compile(r"^doc-[0-9]{1,9}$")
SIGNATURE_MEMBER = re.compile(r"^signatures/[a-z0-9][a-z0-9_-]{0,62}\.json$")
OBJECT_MEMBER = re.compile(r"^objects/([0-9a-f]{32})\.age$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
# Identifiers that also become file names on the portal side are checked there; here only sanity.
MAX_TEXT = 4096
