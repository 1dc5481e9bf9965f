"""The vault: age-encrypted objects, the sealed station identity, per-batch keys, the private RAM directory."""
