"""The web console at ``/_console``: a login page, then the ring drawn as a circle,
the nodes, buckets and objects (upload, download, details), access keys and joins,
updated live. Plain HTML, CSS and JavaScript served from ``static/`` (no build step),
over a small JSON API authenticated by a session cookie (console.py says how).

Modules: console.py (pages, login, sessions and CSRF, the API's routes), context.py
(what a handler gets, the policy check), cluster.py (ring, nodes, joins, keys),
objects.py (buckets and objects), sessions.py (sessions, login throttle: pure),
web.py (cookie, origin check, security headers, static files).
"""

from .console import Console
from .context import Visit
from .web import PREFIX

__all__ = ["PREFIX", "Console", "Visit"]
