"""The bridge's independent ledger: an Application Service that records (without content)
every event the homeserver accepted in the rooms of key officials, and the completeness audit
that compares it with the archive."""
