"""The sealed batch package format shared by the station and the portal receiver: canonical JSON, manifest, strict
tar reader and writer, receipts. Depends on nothing of the station.
"""
