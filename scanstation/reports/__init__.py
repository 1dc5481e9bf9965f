"""Reports computed from the store (no Qt): progress against the roster."""
