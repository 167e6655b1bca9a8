"""A federation's signed metadata aggregate in: fetched over http(s) with bounded size and time,
its enveloped signature checked against the pinned certificate, its validUntil honoured, its
SPs read. What to register from it is app/core/aggregates.py's to decide."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from app.core.aggregates import Loaded
from saml.signature import verify_enveloped
from saml.sp_metadata import read_entity
from saml.xml import NS, SamlError, parse, xpath

# eduGAIN's aggregate is about 100 MB; anything much larger is not metadata we want.
MAX_AGGREGATE_BYTES = 256 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 120
_MD = "{" + NS["md"] + "}"
_CHUNK = 1024 * 1024


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would follow one to ftp)."""

    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise SamlError("The aggregate's address redirects to one that is not http(s).")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SamlError("The aggregate's address must be an http:// or https:// URL.")


def read_certificate(pem: bytes) -> str:
    """The pinned certificate (PEM) as text, or a SamlError if it is not one."""
    try:
        x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SamlError("The certificate file is not a PEM X.509 certificate.") from exc
    return pem.decode("ascii").strip() + "\n"


def fetch(url: str, *, max_bytes: int | None = None,
          timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    """The aggregate's bytes: http(s) only, at most `max_bytes` (MAX_AGGREGATE_BYTES), all of
    it within `timeout` seconds; a SamlError that says what went wrong otherwise."""
    check_url(url)
    limit = max_bytes if max_bytes is not None else MAX_AGGREGATE_BYTES
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(_HttpRedirectsOnly)
    request = urllib.request.Request(url, headers={  # noqa: S310 (http/https: check_url)
        "User-Agent": "um2fa", "Accept": "application/samlmetadata+xml, application/xml"})
    try:
        with opener.open(request, timeout=min(timeout, 30)) as answer:
            declared = answer.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise SamlError(f"The aggregate is larger than {limit} bytes.")
            return _read_bounded(answer, limit, deadline, timeout)
    except urllib.error.HTTPError as exc:
        raise SamlError(f"The aggregate's server answered HTTP {exc.code}.") from exc
    except urllib.error.URLError as exc:
        raise SamlError(f"The aggregate could not be fetched: {exc.reason}.") from exc
    except (TimeoutError, http.client.HTTPException, OSError) as exc:
        raise SamlError(f"The aggregate could not be fetched: {exc or type(exc).__name__}.") \
            from exc


def _read_bounded(answer, limit: int, deadline: float, timeout: float) -> bytes:
    chunks, total = [], 0
    while True:  # bounded: by the size limit and the deadline
        if time.monotonic() > deadline:
            raise SamlError(f"The aggregate took longer than {timeout:g} s to fetch.")
        chunk = answer.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise SamlError(f"The aggregate is larger than {limit} bytes.")
        chunks.append(chunk)


def load(url: str, cert_pem: str, now: datetime) -> Loaded:
    """Fetch the aggregate at `url` and read it (read_aggregate)."""
    return read_aggregate(fetch(url), cert_pem, now)


def read_aggregate(data: bytes, cert_pem: str, now: datetime) -> Loaded:
    """A signed md:EntitiesDescriptor: its enveloped signature by `cert_pem`, its validUntil
    (required) not passed; every EntityDescriptor with an SPSSODescriptor, nested
    EntitiesDescriptors too, except those whose validUntil (or an enclosing one's) passed.
    An entity that cannot be read is skipped, with a brief reason."""
    root = parse(data, max_bytes=MAX_AGGREGATE_BYTES)
    if root.tag != _MD + "EntitiesDescriptor":
        raise SamlError("The metadata is not a federation's aggregate (an EntitiesDescriptor).")
    verify_enveloped(root, [cert_pem], "metadata")
    valid_until = _time(root.get("validUntil"), "validUntil")
    if valid_until is None:
        raise SamlError("The metadata has no validUntil: an aggregate must say until when "
                        "it may be used.")
    if valid_until <= now:
        raise SamlError(f"The metadata expired at {valid_until:%Y-%m-%d %H:%M:%S}Z "
                        "(its validUntil).")
    loaded = Loaded(valid_until=valid_until,
                    cache_duration=_duration(root.get("cacheDuration"), now))
    for node in root.iter(_MD + "EntityDescriptor"):
        if not xpath(node, "md:SPSSODescriptor"):
            continue
        entity_id = (node.get("entityID") or "").strip() or "an entity without entityID"
        try:
            if _expired(node, root, now):
                loaded.skipped.append(f"{entity_id}: its validUntil has passed")
                continue
            meta = read_entity(node)
        except SamlError as exc:
            loaded.skipped.append(f"{entity_id}: {exc}")
            continue
        loaded.entities.append(meta.registration(etree.tostring(node, encoding="unicode")))
    return loaded


def _expired(node: etree._Element, root: etree._Element, now: datetime) -> bool:
    """The entity's own validUntil, or that of an EntitiesDescriptor between it and the root,
    has passed."""
    while node is not None and node is not root:
        until = _time(node.get("validUntil"), "validUntil")
        if until is not None and until <= now:
            return True
        node = node.getparent()
    return False


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(OneLogin_Saml2_Utils.parse_SAML_to_time(value.strip()), UTC)
    except Exception as exc:  # the toolkit raises a bare Exception for a malformed time
        raise SamlError(f"The metadata's {name} is not a time.") from exc


def _duration(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    start = int(now.timestamp())
    try:
        end = OneLogin_Saml2_Utils.parse_duration(value.strip(), start)
    except Exception as exc:  # isodate's ISO8601Error, or an overflow
        raise SamlError("The metadata's cacheDuration is not an ISO 8601 duration.") from exc
    return timedelta(seconds=end - start)
