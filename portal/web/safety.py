"""Small guards shared by views."""
from urllib.parse import urlsplit

from flask import url_for


def safe_next(target, default_endpoint="home.index"):
    """A same-origin path to return to, or the default page (no open redirects)."""
    target = (target or "").strip()
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or parts.scheme or parts.netloc or any(ord(c) < 32 for c in target)):
        return url_for(default_endpoint)
    return target
