"""The bridge's HTTP service (aiohttp): health, and later the ledger and the review API."""
