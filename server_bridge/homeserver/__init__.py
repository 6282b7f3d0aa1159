"""The embedded homeserver: configuration, process control and admin calls."""
