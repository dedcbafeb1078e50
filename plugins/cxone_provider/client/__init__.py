"""The client under :class:`~cxone_provider.hooks.cxone.CxoneHook`: one core, two faces.

The two faces, built from the same settings and options:

- :mod:`~cxone_provider.client.api` — :class:`CxoneClient` on ``requests`` (the hook's, in workers);
- :mod:`~cxone_provider.client.async_api` — :class:`AsyncCxoneClient` on ``httpx`` (the triggers'),
  and :mod:`~cxone_provider.client.transport` / :mod:`~cxone_provider.client.async_transport`, their
  HTTP pools.

The core both use, each rule written once (sans-IO where both faces need it):

- :mod:`~cxone_provider.client.core` — a request as either face sends it; what every transport knows;
- :mod:`~cxone_provider.client.policy` — the per-call retry table, backoff, Retry-After, the wait budget;
- :mod:`~cxone_provider.client.answers` — bounded, redacted reading of an answer; redirects refused;
- :mod:`~cxone_provider.client.secrets` — every form of a credential, registered with the masker;
- :mod:`~cxone_provider.client.auth` — the token life cycle and the discovery of the API host;
- :mod:`~cxone_provider.client.pages` and :mod:`~cxone_provider.client.events` — ``agents/states``
  paging and the ``get-next-event`` poll;
- :mod:`~cxone_provider.client.settings` and :mod:`~cxone_provider.client.paths` — the connection's
  checked fields, the URL rules and the ids that go into a path.

Answers are :class:`~cxone_provider.response.ApiResponse` values; errors come from :mod:`cxone_provider.exceptions`.

Nothing here knows Studio's result conditions; :mod:`cxone_provider.domain.classification` decides those.
"""
