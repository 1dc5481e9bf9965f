"""The station's store (SQLCipher, station.db): schema and migrations, batches, documents, pages, objects and
uploads; audit entries go through the injected audit sink.
"""
