"""The internal client under :class:`~cxone_provider.hooks.cxone.CxoneHook`, in layers that read top-down.

- :mod:`~cxone_provider.client.api` — :class:`CxoneClient` and its one ``request()``;
- :mod:`~cxone_provider.client.auth` — the token life cycle and the discovery of the API host;
- :mod:`~cxone_provider.client.transport` — one pooled HTTP session, bounded reading of answers and
  the per-call retry policy;
- :mod:`~cxone_provider.client.settings` — the connection's checked fields and the URL rules.

Answers are :class:`~cxone_provider.response.ApiResponse` values; errors come from :mod:`cxone_provider.exceptions`.

Nothing here knows Studio's result conditions; :mod:`cxone_provider.domain.classification` decides those.
"""
