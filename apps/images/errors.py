"""Errors of image ingestion, with their messages kept as constants so tests can assert them."""

from __future__ import annotations

from rest_framework import status

from apps.core.errors import DomainError, NotFoundError

# Images sit below labels (labels count and wipe images): the message lives here, labels import it.
MSG_LABEL_NOT_FOUND = "Label not found."

MSG_NOT_AN_IMAGE = "The file is not an image we can read (JPEG, PNG, WebP, GIF or BMP)."
MSG_UNSUPPORTED_FORMAT = "Unsupported image format {format}; send JPEG, PNG, WebP, GIF or BMP."
MSG_TRUNCATED = "The image is truncated or corrupt."
MSG_EMPTY = "The image is empty."
MSG_TOO_MANY_PIXELS = "The image has too many pixels (a decompression bomb?); at most {limit} are accepted."
MSG_TOO_LARGE = "The image is larger than {limit} bytes."
MSG_BAD_BASE64 = "The base64 data is not valid."
MSG_NO_SOURCE = "Send one of img_path (file), base64 or url."
MSG_MANY_SOURCES = "Send only one of img_path (file), base64 or url."
# The client's parse_already_inserted reads the id with r"image.ID..(<uuid4>)": two characters
# between "ID" and the id, hence " <" (API.md's "(image ID <uuid>)" taken literally).
MSG_DUPLICATE = "Training image with this content already exists (image ID <{image_id}>)"
MSG_IMAGE_NOT_FOUND = "Training image not found."

MSG_VALUE_REQUIRED = "A value label needs a numeric value."
MSG_VALUE_NOT_ALLOWED = "Only a value label takes a value."
MSG_LABEL_NOT_ON_IMAGE = "This label is not on the image."

MSG_STORAGE_UNAVAILABLE = "Image storage is unavailable; nothing was stored. Try again later."

MSG_URL_SCHEME = "Only http and https URLs can be fetched."
MSG_URL_INVALID = "The URL is not valid."
MSG_URL_FORBIDDEN = "The URL points to an address that is not public."
MSG_URL_TOO_MANY_REDIRECTS = "The URL redirects too many times."
MSG_URL_TIMEOUT = "Fetching the URL timed out."
MSG_URL_UNREACHABLE = "The URL could not be fetched."
MSG_URL_STATUS = "Fetching the URL answered HTTP {status}."


class StorageUnavailableError(DomainError):
    """The storage backend refused a write: 503, retryable, and nothing was stored."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class ImageInputError(DomainError):
    """Bytes that are not an acceptable image (or bad base64): 400 with the reason."""


class ImageTooLargeError(ImageInputError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class DuplicateImageError(DomainError):
    def __init__(self, image_id):
        super().__init__(MSG_DUPLICATE.format(image_id=image_id))
        self.image_id = image_id


class UrlFetchError(DomainError):
    """A URL that may not be fetched (SSRF rules) or could not be fetched."""


class ImageNotFoundError(NotFoundError):
    def __init__(self, message: str = MSG_IMAGE_NOT_FOUND):
        super().__init__(message)


class LabelNotFoundError(NotFoundError):
    def __init__(self, message: str = MSG_LABEL_NOT_FOUND):
        super().__init__(message)
