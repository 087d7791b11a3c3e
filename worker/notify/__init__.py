"""Notifications behind the ``Notifier`` port (docs/architecture.md, "Packages" says
where a new channel goes): ``sanitize`` makes attacker-written text safe, ``render``
turns the pipeline's facts into a subject and body, each channel module (``sns``,
``chat``, ``securityhub``, ``eventbridge``) publishes them, ``fanout`` sends a milestone
to every enabled channel, and ``registry`` builds them by the names of ``names``.

This ``__init__`` imports nothing, so the settings can name the channels
(:mod:`worker.notify.names`) without loading a channel.
"""
