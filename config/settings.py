"""Every setting of the service, read from the environment.

Defaults work on a fresh clone with nothing else installed: SQLite, media files under ``var/``,
a filesystem Celery broker (no server) and console e-mail. ``VF_ENV=production`` removes the
defaults that are unsafe in production (secret key, allowed hosts), so a misconfigured deploy fails
at start instead of running insecurely. docs/operations.md lists every variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- Mode -----------------------------------------------------------------------------------------
# "development" (default) or "production". Production refuses to start without a secret key and
# allowed hosts and turns on the HTTPS settings below.
VF_ENV = env("VF_ENV", "development")
PRODUCTION = VF_ENV == "production"
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)

# Where runtime data lives by default (SQLite file, media, filesystem broker, model cache).
VF_VAR_DIR = Path(env("VF_VAR_DIR", str(BASE_DIR / "var")))
VF_VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when VF_ENV=production")
    # A development default only: production mode refuses to start without DJANGO_SECRET_KEY.
    SECRET_KEY = "dev-only-insecure-key-change-me"  # noqa: S105  # nosec B105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when VF_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- Applications ---------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_htmx",
    "apps.core",
    "apps.workspaces",
    "apps.labels",
    "apps.tasks",
    "apps.images",
    "apps.training",
    "apps.recognition",  # image recognition's trainer and predictor
    "apps.detection",
    "apps.inference",
    "apps.suggestions",  # the labelling loop: pool, active-learning suggestions, pre-labels
    "apps.webhooks",  # a workspace's events posted to its owner's URLs, signed and retried
    "apps.similarity",  # descriptors per image, "images like this one", near-duplicate warnings
    # Backups, restores and the storage check (manage.py backup / restore / check_storage).
    "apps.backups",
    # Per-workspace limits (images, stored bytes, versions, queued trainings), set in the admin.
    "apps.quotas",
    # Scoped API tokens: named keys for one workspace (read-only, classify-only, full), hashed.
    "apps.tokens",
    # Who did what to whom (membership, tokens, deletions, lockouts): the audit log.
    "apps.audit",
    # The web console (/console/): templates and views over the same services and selectors.
    "apps.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but one: it sees Django's own HTML error pages (DEBUG) and answers JSON instead.
    "apps.core.middleware.JsonErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Keeps the request being served for the audit log's receivers (apps/audit/context.py).
    "apps.audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # request.htmx for the console's partial pages.
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a login refused for too many failures into a 429.
    "axes.middleware.AxesMiddleware",
]

# Failed logins (the token endpoint, the admin and the console) are counted by django-axes per username and
# per address; past the limit both are refused (429) for the cool-off time, even with the right
# password. The address is the socket's unless VF_NUM_PROXIES proxies are in front.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
VF_NUM_PROXIES = env_int("VF_NUM_PROXIES", 0)
AXES_FAILURE_LIMIT = env_int("VF_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("VF_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one past the limit locks
AXES_CLIENT_IP_CALLABLE = "apps.core.clients.client_ip"
# JSON 429 for the API and the admin; the console's sign-in page gets a page (same message).
AXES_LOCKOUT_CALLABLE = "apps.console.views.account.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# Where a page that needs a session sends a visitor: the console's sign-in (apps/console). The
# admin keeps its own login and logout pages; the console's views name their own redirects.
LOGIN_URL = "console:login"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
# Paths answer with and without the trailing slash (the Ximilar client calls both forms), so
# Django must not redirect (a redirect would turn a POST into a GET).
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user:pass@host:5432/name; default a SQLite file under var/.
# Connections persist for DATABASE_CONN_MAX_AGE seconds (opening one to PostgreSQL cost more than
# the rest of a small request, BENCHMARKS.md), checked before reuse so a restarted server is
# noticed; 0 closes each at the end of its request.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VF_VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is for one machine: the web workers and the Celery worker share one file. WAL lets
    # readers run beside the one writer; a transaction takes the write lock when it begins
    # (IMMEDIATE), so two writers queue on the busy timeout instead of one failing with "database
    # is locked" when it upgrades a read lock mid-transaction; synchronous=NORMAL is safe with WAL.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(VF_VAR_DIR / "static")))
MEDIA_ROOT = Path(env("VF_MEDIA_ROOT", str(VF_VAR_DIR / "media")))
MEDIA_URL = "media/"
# With AWS_STORAGE_BUCKET_NAME set, images, thumbnails and model artifacts go to S3 (or any
# S3-compatible server: AWS_S3_ENDPOINT_URL) and image URLs are presigned; else local files.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", "")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env("AWS_S3_REGION_NAME") or None,
            "access_key": env("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env("AWS_SECRET_ACCESS_KEY") or None,
            "querystring_auth": True,  # presigned URLs
            "querystring_expire": env_int("VF_SIGNED_URL_TTL", 86400),
            "default_acl": None,
            "file_overwrite": False,
            "signature_version": "s3v4",
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# The S3 endpoint as clients reach it, when that differs from the one the service uses (compose:
# the service talks to http://minio:9000, a browser to http://localhost:9000). Presigned image URLs
# are signed for this host (the signature covers it), through a second storage of the same bucket.
AWS_S3_PUBLIC_ENDPOINT_URL = env("AWS_S3_PUBLIC_ENDPOINT_URL", "")
if AWS_STORAGE_BUCKET_NAME and AWS_S3_PUBLIC_ENDPOINT_URL:
    STORAGES["public"] = {
        **_default_storage,
        "OPTIONS": {**_default_storage["OPTIONS"], "endpoint_url": AWS_S3_PUBLIC_ENDPOINT_URL},
    }

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # A scoped token (a "vfs_" key, apps/tokens), bound to its workspace; other keys go on.
        "apps.tokens.authentication.ScopedTokenAuthentication",
        # DRF's token authentication with the lookup cached and forgotten on revocation.
        "apps.workspaces.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        # What a scoped token's scope allows (apps/tokens/scopes.py); other callers pass.
        "apps.tokens.permissions.TokenScopePermission",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("VF_PAGE_SIZE", 25),
    # django-filter, skipped when no filter parameter is given (apps/core/filters.py).
    "DEFAULT_FILTER_BACKENDS": ["apps.core.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.errors.exception_handler",
    # DRF's parsers, with JSON nested too deeply for Python's parser answered as a 400.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "apps.core.parsers.MultiPartParser",
    ],
    # Throttles key anonymous callers by address: X-Forwarded-For counts only behind that many
    # proxies (DRF reads the header from any client when NUM_PROXIES is unset).
    "NUM_PROXIES": VF_NUM_PROXIES,
    # DRF's throttles with one counter per caller and window (apps/core/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.core.throttling.UserRateThrottle",
        "apps.core.throttling.AnonRateThrottle",
    ],
    # Per-token request rates; raise or lower them with the environment.
    "DEFAULT_THROTTLE_RATES": {
        "user": env("VF_THROTTLE_USER", "6000/min"),
        "anon": env("VF_THROTTLE_ANON", "120/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "VisionForge API",
    "DESCRIPTION": "Custom image recognition, wire-compatible with the Ximilar / Vize.ai REST API.",
    "VERSION": "2.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's JavaScript is served by this installation, not a CDN (works offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["apps.core.schema.drop_alias_paths"],
    # Error answers (401/404/400/413) and their bodies on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.declare_error_responses",
    ],
    # The background jobs' status (a scoring run, a descriptor run): one enum, named once.
    "ENUM_NAME_OVERRIDES": {"JobStatusEnum": "apps.similarity.models.DescriptorRun.Status"},
}

# --- Celery ---------------------------------------------------------------------------------------
# Default broker: kombu's filesystem transport under var/celery, which needs no server.
# Set CELERY_BROKER_URL=redis://host:6379/0 in production.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
CELERY_FILESYSTEM_DIR = VF_VAR_DIR / "celery"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Hard and soft limits for a training job (seconds).
VF_TRAINING_TIME_LIMIT = env_int("VF_TRAINING_TIME_LIMIT", 6 * 3600)
VF_TRAINING_SOFT_TIME_LIMIT = env_int("VF_TRAINING_SOFT_TIME_LIMIT", VF_TRAINING_TIME_LIMIT - 300)
VF_TASK_TIME_LIMIT = env_int("VF_TASK_TIME_LIMIT", 600)

# --- Cache ----------------------------------------------------------------------------------------
# Throttling counters live here. Shared between processes only with Redis: VF_CACHE_URL, defaulting
# to the broker when that is Redis (a separate database number is wise in production).
VF_CACHE_URL = env("VF_CACHE_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
CACHES = {
    # Django's Redis cache, reusing its Redis client (apps/core/cache.py).
    "default": {"BACKEND": "apps.core.cache.RedisCache", "LOCATION": VF_CACHE_URL}
    if VF_CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Seconds a token's user and default workspace are kept in the cache (apps/workspaces/
# authentication.py). Only with a cache every process shares: a revocation forgets the entry in
# that cache, which the in-process default cannot do for the other gunicorn workers.
VF_TOKEN_CACHE_SECONDS = env_int("VF_TOKEN_CACHE_SECONDS", 300 if VF_CACHE_URL else 0)

# --- E-mail ---------------------------------------------------------------------------------------
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "VisionForge <noreply@localhost>")

# --- Security (production) ------------------------------------------------------------------------
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env_bool("VF_BEHIND_PROXY", PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Preloading is an opt-in that lists the domain in browsers for good; off unless asked for, and the
# check that nags about it is silenced for that reason.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging --------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("VF_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Product --------------------------------------------------------------------------------------
# Base URL the API uses for absolute links when there is no request (jobs, e-mails).
VF_PUBLIC_URL = env("VF_PUBLIC_URL", "http://localhost:8000")
# Lifetime (s) of the signed img_path / thumb_img_path URLs (Django signing locally, presigned on S3).
VF_SIGNED_URL_TTL = env_int("VF_SIGNED_URL_TTL", 24 * 3600)
# Hosts the URL fetcher may reach although they resolve to private/loopback addresses (intranets).
VF_URL_FETCH_ALLOWED_HOSTS = env_list("VF_URL_FETCH_ALLOWED_HOSTS")
# Webhooks (apps/webhooks). Hosts a webhook may be sent to although they resolve to private or
# loopback addresses (an intranet receiver); every other non-public target is refused when the
# webhook is registered and when a delivery connects. Its own list: allowing an image host does
# not let any workspace owner post to it.
VF_WEBHOOKS_ALLOWED_HOSTS = env_list("VF_WEBHOOKS_ALLOWED_HOSTS")
# Attempts of a delivery in all, the wait (s) after the first failed one (doubling after each
# next one: 30 s, 1, 2, 4 min), and how long (s) a receiver has to connect and answer.
VF_WEBHOOKS_MAX_ATTEMPTS = env_int("VF_WEBHOOKS_MAX_ATTEMPTS", 5)
VF_WEBHOOKS_RETRY_BASE_S = env_int("VF_WEBHOOKS_RETRY_BASE_S", 30)
VF_WEBHOOKS_TIMEOUT_S = env_int("VF_WEBHOOKS_TIMEOUT_S", 10)
# Similarity search (apps/similarity). Indexes of descriptors kept per web process (one per
# version, rebuilt from the database rows), the cosine distance at or under which an upload is
# reported as a near-duplicate (chosen on development photos: bench/dev_similarity_threshold.py), how
# many it names at most, and the largest k a search may ask for.
VF_SIMILARITY_CACHE_SIZE = env_int("VF_SIMILARITY_CACHE_SIZE", 2)
VF_SIMILARITY_DUPLICATE_DISTANCE = float(os.environ.get("VF_SIMILARITY_DUPLICATE_DISTANCE") or 0.15)
VF_SIMILARITY_DUPLICATES_SHOWN = env_int("VF_SIMILARITY_DUPLICATES_SHOWN", 5)
VF_SIMILARITY_MAX_K = env_int("VF_SIMILARITY_MAX_K", 100)

SESSION_COOKIE_AGE = int(timedelta(days=14).total_seconds())

# Largest accepted image (training upload or classify record), in bytes.
VF_MAX_IMAGE_BYTES = env_int("VF_MAX_IMAGE_BYTES", 10 * 1024 * 1024)
# Largest meta_data (training image, workspace), in bytes of compact JSON.
VF_MAX_META_DATA_BYTES = env_int("VF_MAX_META_DATA_BYTES", 64 * 1024)
# Memory under large but valid images (apps/images/decoding.py): the pixels one process decodes at
# once, across all its requests and threads (a request waits its turn, up to VF_DECODE_WAIT_S,
# then answers 503; at least one largest image, 50 M pixels), and the pixels one classify call
# may decode in all (records past it get their own 413; a JPEG counts at the reduced scale it is
# decoded at).
VF_DECODE_PIXELS_AT_ONCE = env_int("VF_DECODE_PIXELS_AT_ONCE", 64_000_000)
VF_DECODE_WAIT_S = env_int("VF_DECODE_WAIT_S", 30)
VF_MAX_REQUEST_PIXELS = env_int("VF_MAX_REQUEST_PIXELS", 150_000_000)
# DELETE label/{id}/wipe deletes up to this many images within the request (204); a larger label is
# wiped by a job in committed batches (202).
VF_WIPE_INLINE_MAX = env_int("VF_WIPE_INLINE_MAX", 2000)
# Records per classify call (the Ximilar limit).
VF_CLASSIFY_MAX_RECORDS = 10
# Django refuses larger request bodies (DRF applies it to JSON too); the API answers a JSON 413.
# Sized on purpose: a classify call of 10 base64 records of the largest accepted image (base64 is
# 4/3 of the bytes) plus 1 MiB for the rest of the JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "VF_MAX_BODY_BYTES", VF_CLASSIFY_MAX_RECORDS * (VF_MAX_IMAGE_BYTES * 4 // 3 + 4) + 1024 * 1024
)
# Classify (apps/inference: services.py, cache.py). Model versions each web process keeps loaded
# (LRU; one EfficientNet-Lite0 is ~20 MB of weights).
VF_MODEL_CACHE_SIZE = env_int("VF_MODEL_CACHE_SIZE", 4)
# torch intra-op threads per web process: the cores divided by the gunicorn workers
# (WEB_CONCURRENCY, 2 by default like scripts/run.sh and the Dockerfile), so workers x threads
# never oversubscribe the CPU. docs/operations.md: "Sizing gunicorn for classify".
VF_INFERENCE_THREADS = env_int(
    "VF_INFERENCE_THREADS", max(1, (os.cpu_count() or 1) // max(1, env_int("WEB_CONCURRENCY", 2)))
)
# ONNX Runtime passes of one call's batch run side by side, each on VF_INFERENCE_THREADS threads
# (ml/inference.py, ``run_in_passes``): by default as many as make the cores, so a 10-record call
# on an otherwise idle server uses every core, not its worker's share (detect 10 records in about
# half the time on 2 cores; BENCHMARKS.md, "Passes side by side"). 1 = one pass after another.
VF_INFERENCE_PASSES = env_int(
    "VF_INFERENCE_PASSES", max(1, (os.cpu_count() or 1) // max(1, VF_INFERENCE_THREADS))
)
# How a loaded version runs (BENCHMARKS.md, classify; docs/operations.md, "Inference modes"): "auto"
# (= "onnx"; on a GPU without onnxruntime's CUDA provider, "jit"), "onnx" (the version's model.onnx,
# the file a download hands out, FP32 or INT8, in ONNX Runtime), "jit" (TorchScript trace + freeze,
# float32: the FP32 ONNX export's answers within 1e-4), "bf16" (traced, bfloat16 weights: faster on
# AMX CPUs and GPUs, probabilities within ~0.05) or "eager".
VF_INFERENCE_MODE = env("VF_INFERENCE_MODE", "auto")
# A version is served in INT8 (calibrated on its training side) only when, on its test side, INT8
# keeps FP32's top-1 answer for at least this share of the images and moves no probability by more
# than VF_INT8_MAX_PROB_DIFF; else in FP32 (ml/recognition/serving.py). VF_INT8=0: always FP32.
VF_INT8 = env_bool("VF_INT8", True)
VF_INT8_MIN_AGREEMENT = float(env("VF_INT8_MIN_AGREEMENT", "0.995"))
VF_INT8_MAX_PROB_DIFF = float(env("VF_INT8_MAX_PROB_DIFF", "0.03"))

# Training (apps/training). Images each label needs before a task may train.
VF_MIN_IMAGES_PER_LABEL = env_int("VF_MIN_IMAGES_PER_LABEL", 20)
# Detection (apps/detection): images with an object of each label before a detection task may
# train; the longer side the detector sees (px; 0 = chosen from the training boxes' sizes, 256 to
# 512); epochs at most (early stopping on a validation slice or the time budget may stop sooner).
VF_MIN_DETECTION_IMAGES_PER_LABEL = env_int("VF_MIN_DETECTION_IMAGES_PER_LABEL", 10)
VF_DETECTION_INPUT_SIZE = env_int("VF_DETECTION_INPUT_SIZE", 0)
VF_DETECTION_EPOCHS = env_int("VF_DETECTION_EPOCHS", 30)
# The train_time_budget (s) a new detection task gets when it names none.
VF_DETECTION_TIME_BUDGET = env_int("VF_DETECTION_TIME_BUDGET", 600)
# Architecture when a task sets none: "auto" (the trainer tries candidates and keeps the best on
# validation, see ml/recognition/recipe.py) or one of ml.config.ALLOWED_ARCHITECTURES.
VF_TRAIN_ARCHITECTURE = env("VF_TRAIN_ARCHITECTURE", "auto")
# Wall-clock budget (s) of one training job, from the worker picking it up to TRAINED (a task may
# ask for more, see Task.train_time_budget), and the epoch cap of each net trained in it.
VF_TRAIN_TIME_BUDGET = env_int("VF_TRAIN_TIME_BUDGET", 120)
VF_TRAIN_EPOCHS = env_int("VF_TRAIN_EPOCHS", 15)
# Starting weights: auto (the offline package, then the hub, then scratch), none, hub, package or a path.
VF_TRAIN_PRETRAINED = env("VF_PRETRAINED", "auto")
# torch threads of a training (0 = torch's default, one per core). Lower it when several workers
# share the cores: oversubscribed threads spin and make training several times slower.
VF_TRAIN_THREADS = env_int("VF_TRAIN_THREADS", 0)
# A running training writes a heartbeat this often (s); the sweep treats one silent for
# VF_TRAINING_STALE_AFTER (s) as left by a dead worker and requeues it (up to VF_TRAINING_MAX_ATTEMPTS
# starts) or fails it. A version QUEUED longer than VF_TRAINING_QUEUED_MAX_AGE (s) fails.
# A worker process that died on the machine of its successor is noticed at once, without waiting
# (apps/training/claims.py); the stale window covers a whole machine that is gone.
VF_TRAINING_HEARTBEAT_INTERVAL = env_int("VF_TRAINING_HEARTBEAT_INTERVAL", 15)
VF_TRAINING_STALE_AFTER = env_int("VF_TRAINING_STALE_AFTER", 180)
VF_TRAINING_MAX_ATTEMPTS = env_int("VF_TRAINING_MAX_ATTEMPTS", 2)
VF_TRAINING_QUEUED_MAX_AGE = env_int("VF_TRAINING_QUEUED_MAX_AGE", 24 * 3600)
# How often (s) celery beat runs that sweep.
VF_TRAINING_SWEEP_INTERVAL = env_int("VF_TRAINING_SWEEP_INTERVAL", 60)
# Quotas per workspace (apps/quotas): the defaults of a workspace whose limits row (the admin,
# "Workspace quotas") leaves a limit empty. Unset or empty = unlimited. Images, stored bytes (the
# stored image and its thumbnail), model versions kept (any status), trainings queued or running
# at once. Past one, the service answers 403 naming the limit, its value and the current use.
VF_QUOTA_IMAGES = env_int("VF_QUOTA_IMAGES", None)
VF_QUOTA_BYTES = env_int("VF_QUOTA_BYTES", None)
VF_QUOTA_VERSIONS = env_int("VF_QUOTA_VERSIONS", None)
VF_QUOTA_QUEUED_TRAININGS = env_int("VF_QUOTA_QUEUED_TRAININGS", None)
# A worker told to stop (SIGTERM, Ctrl-C) lets a running training go on this long (s), then hands it
# back to the queue for the next worker (apps/training/jobs.py). Keep it below the time the platform
# waits before SIGKILL (docker stop: 10 s, Kubernetes: 30 s), or the training waits for the sweep.
VF_WORKER_SHUTDOWN_GRACE = env_int("VF_WORKER_SHUTDOWN_GRACE", 8)
# Local copies of model artifacts, downloaded from storage on first use (keyed by version id).
VF_MODEL_CACHE_DIR = Path(env("VF_MODEL_CACHE_DIR", str(VF_VAR_DIR / "model-cache")))
# Thumbnails per page of the console's image grid.
VF_CONSOLE_PAGE_SIZE = env_int("VF_CONSOLE_PAGE_SIZE", 60)
# Files a browser uploads at once when many are dropped on a label (each file is its own request).
VF_CONSOLE_PARALLEL_UPLOADS = env_int("VF_CONSOLE_PARALLEL_UPLOADS", 3)
