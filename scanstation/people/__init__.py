"""The station's people: accounts and passwords, sign-in and sessions, roles and what each may do."""
