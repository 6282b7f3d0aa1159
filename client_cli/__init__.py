"""rijkschat: the end-to-end encrypted command-line Matrix client of Rijkschat.

Layout: ``__main__`` (the thin synchronous shell), ``commands/`` (one module per command
group), ``matrix`` (nio session helpers), ``archive_api`` (typed client of the bridge's review
API), ``timeline`` (pure event logic), ``storage``, ``crosssign``, ``output``, ``errors``.
It talks to the homeserver and the bridge over HTTP only and imports neither server package.
"""
