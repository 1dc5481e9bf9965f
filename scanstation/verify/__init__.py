"""Verification (issue 14): closing a batch, page verdicts, assembly fixes, approval and return.

No Qt here: the CLI (:mod:`scanstation.cli.verification`) and the service operations
(:mod:`scanstation.service.ops_verification`) call the same functions in :mod:`scanstation.verify.core`.
"""
