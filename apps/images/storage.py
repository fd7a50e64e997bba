"""Training image files in Django's default storage, handed out as signed, expiring URLs.

Nothing here assumes a filesystem: files go through ``default_storage`` (local disk by default, S3
once ``STORAGES["default"]`` says so). The API never exposes storage names; it hands out

* for local storage, ``/media/<name>?sig=<timestamp:signature>`` signed with Django's
  ``TimestampSigner`` and served by ``views.media_file`` without a token;
* for storages that presign (S3), ``storage.url(name, expire=...)``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import time
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage, storages
from django.urls import get_script_prefix, reverse
from django.utils.encoding import force_bytes

logger = logging.getLogger(__name__)

SIGNING_SALT = "apps.images.media"
SIGNATURE_PARAM = "sig"


def _signer() -> signing.TimestampSigner:
    return _signer_for(settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=4)
def _signer_for(secret: str, fallbacks: tuple[str, ...]) -> signing.TimestampSigner:
    """One signer per key set (a list page signs two links per image; building a signer each time
    read and checked the settings 200 times for 100 images). Keyed by the keys themselves, so a
    rotated SECRET_KEY takes effect at once."""
    return _MediaSigner(key=secret, fallback_keys=list(fallbacks), salt=SIGNING_SALT)


class _MediaSigner(signing.TimestampSigner):
    """Django's ``TimestampSigner``, signing with the current key without redoing per value what
    depends on the key alone.

    ``salted_hmac`` derives the HMAC key (a SHA-256 of salt and secret) on every signature, and the
    base 62 timestamp is re-encoded for every link; here the keyed HMAC is built once and copied,
    and the timestamp encoded once per second. The signatures are the same bytes
    (tests/images/test_signed_urls.py checks them against Django's signer); other keys (the
    fallbacks, when verifying) take Django's path.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._mac = None
        if self.algorithm == "sha256":
            derived = hashlib.sha256(force_bytes(self.salt + "signer") + force_bytes(self.key)).digest()
            self._mac = hmac.new(derived, digestmod=hashlib.sha256)

    def signature(self, value, key=None):
        if self._mac is None or (key is not None and key != self.key):
            return super().signature(value, key)
        mac = self._mac.copy()
        mac.update(force_bytes(value))
        return signing.b64_encode(mac.digest()).decode()

    def timestamp(self):
        return _b62(int(time.time()))


_b62 = functools.lru_cache(maxsize=4)(signing.b62_encode)


def _is_local(storage) -> bool:
    return isinstance(storage, FileSystemStorage)


def new_names(workspace_id, extension: str) -> tuple[str, str]:
    """Unguessable storage names for an image and its thumbnail (never derived from the image id)."""
    key = secrets.token_hex(16)
    return (
        f"training-images/{workspace_id}/{key}.{extension}",
        f"training-images/{workspace_id}/thumbs/{key}.jpg",
    )


def save_bytes(name: str, data: bytes) -> str:
    """Store ``data`` under ``name`` (or a free variant of it); return the name used."""
    return default_storage.save(name, ContentFile(data))


def read_bytes(name: str, *, who: str) -> bytes | None:
    """The stored file's bytes, or None (logged as ``who`` skipping it) when it cannot be read: a
    background job over many images skips a missing file rather than failing."""
    try:
        with default_storage.open(name, "rb") as handle:
            return handle.read()
    except OSError:
        logger.warning("%s: the file %s cannot be read; skipped", who, name)
        return None


def delete_files(*names: str) -> None:
    """Delete files, logging (not raising) failures: a leftover file must not fail a request."""
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001 - any storage backend error
            logger.exception("Could not delete %s from storage", name)


def sign(name: str) -> str:
    """The signature part (``timestamp:signature``) for ``name``."""
    return _signer().sign(name)[len(name) + 1 :]


def verify(name: str, signature: str, max_age: int | None = None) -> bool:
    """True if ``signature`` was made by ``sign(name)`` less than ``max_age`` seconds ago."""
    if not name or not signature:
        return False
    max_age = settings.VF_SIGNED_URL_TTL if max_age is None else max_age
    try:
        _signer().unsign(f"{name}:{signature}", max_age=max_age)
    except signing.BadSignature:  # SignatureExpired is a subclass
        return False
    return True


def signed_url(name: str, request=None) -> str:
    """An absolute URL for the stored file ``name`` that works without a token and expires.

    ``VF_SIGNED_URL_TTL`` seconds is the lifetime. Built on ``request``'s host when given, else on
    ``VF_PUBLIC_URL``. Empty for an empty name.
    """
    if request is not None and name and _is_local(default_storage):
        # A list page's links: the request's origin and the media path are worked out once.
        return _request_media_base(request) + _signed_tail(name)
    link = signed_link(name)
    if not link or not link.startswith("/"):
        return link
    if request is not None:
        return _request_origin(request) + link
    return settings.VF_PUBLIC_URL.rstrip("/") + link


def _request_origin(request) -> str:
    """``scheme://host`` of ``request``, worked out (host validation included) once per request."""
    origin = getattr(request, "_vf_origin", None)
    if origin is None:
        origin = request._vf_origin = request.build_absolute_uri("/")[:-1]
    return origin


def _request_media_base(request) -> str:
    """``scheme://host/<script prefix>media/`` for ``request``, once per request (local storage)."""
    base = getattr(request, "_vf_media_base", None)
    if base is None:
        base = request._vf_media_base = _request_origin(request) + _media_prefix(get_script_prefix())
    return base


def signed_link(name: str) -> str:
    """Like ``signed_url`` but host-relative for local storage (the admin's previews use it)."""
    if not name:
        return ""
    storage = default_storage
    if not _is_local(storage):
        if "public" in settings.STORAGES:  # the endpoint clients reach (AWS_S3_PUBLIC_ENDPOINT_URL)
            storage = storages["public"]
        try:
            # django-storages' S3 storage presigns with ``expire``.
            return storage.url(name, expire=settings.VF_SIGNED_URL_TTL)
        except TypeError:
            return storage.url(name)
    return _media_prefix(get_script_prefix()) + _signed_tail(name)


def _signed_tail(name: str) -> str:
    """What follows the media path in a local file's link: the quoted name and its signature."""
    return quote(name, safe=_NAME_SAFE) + "?" + _signature_query(sign(name))


def _signature_query(signature: str) -> str:
    """``urlencode({SIGNATURE_PARAM: signature})`` without its generic quoting, a fifth of a link's
    cost: a signature is ``<base 62 timestamp>:<URL-safe base 64>``, whose only character that
    ``quote_plus`` changes is the colon (tests/images/test_signed_urls.py checks them equal)."""
    return f"{SIGNATURE_PARAM}={signature.replace(':', '%3A')}"


# What ``reverse`` leaves unquoted in a path argument (django.urls.resolvers).
_NAME_SAFE = "!$&'()*+,;=/~:@"


@functools.lru_cache(maxsize=8)
def _media_prefix(script_prefix: str) -> str:
    """The media view's path up to the file name, resolved once per script prefix: a list page
    signs two links per image, and ``reverse`` was most of their cost."""
    return reverse("media-file", kwargs={"name": "_"})[:-1]
