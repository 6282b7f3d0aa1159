"""The Synapse module that guarantees the archiver in every key official's room.

Only :mod:`server_bridge.policy.config` (stdlib) is imported outside Synapse; the module
itself (:mod:`server_bridge.policy.module`) runs inside the homeserver and imports Synapse
and the standard library only.
"""
