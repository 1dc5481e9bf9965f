"""The unit's roster (the HR portal's staff list) and indexing against it: import, name search in Devanagari
and Latin, ACR periods, and the index check at entry (not in roster, duplicates)."""
