"""Page cleanup: borders, blank backs, orientation, skew and quality flags, composed into one correction per page."""
