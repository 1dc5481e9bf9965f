"""The station's SQLite store: schema and migrations, batches, documents, pages, objects, uploads and the audit
trail.
"""
