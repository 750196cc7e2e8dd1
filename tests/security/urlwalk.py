"""Every URL pattern of the product, as the security tests walk them.

Read from the live resolver (not a hand-kept list), so a new pattern shows up
here the moment it is added; the tests then refuse it until it is classified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

# Django's own admin has its own (staff) access control; static files are served by WhiteNoise.
SKIPPED_PREFIXES = ("admin/",)
_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name", or "route:/<route>" for an unnamed pattern
    route: str  # the full route, e.g. "jobs/<int:job_id>/"
    kwargs: dict[str, str]  # parameter name -> converter name ("int", "str", ...)

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/")

    def path(self, values: dict[str, Any]) -> str:
        missing = set(self.kwargs) - set(values)
        if missing:
            raise KeyError(f"no test value for {sorted(missing)} of {self.route!r}: add one to the security tests")
        return "/" + _PARAM.sub(lambda m: str(values[m["name"]]), self.route)


def _walk(patterns, prefix: str, namespace: str | None) -> list[Route]:
    found: list[Route] = []
    for p in patterns:
        route = prefix + str(p.pattern)
        if route.startswith(SKIPPED_PREFIXES) or route.startswith(settings.STATIC_URL.lstrip("/")):
            continue
        if not isinstance(p.pattern, RoutePattern):
            raise AssertionError(f"{route!r} is a regex pattern: the security tests only know path() routes")
        if isinstance(p, URLResolver):
            inner = ":".join(filter(None, [namespace, p.namespace])) or None
            found += _walk(p.url_patterns, route, inner)
        elif isinstance(p, URLPattern):
            kwargs = {m["name"]: m["converter"] or "str" for m in _PARAM.finditer(route)}
            key = ":".join(filter(None, [namespace, p.name])) if p.name else f"route:/{route}"
            found.append(Route(key=key, route=route, kwargs=kwargs))
    return found


def all_routes() -> list[Route]:
    return _walk(get_resolver().url_patterns, "", None)
