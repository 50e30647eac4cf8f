"""The one settings object of the service.

Precedence, lowest to highest: built-in defaults → a TOML file → ``BRGAN_*`` environment
variables. The TOML file is named by ``--config PATH`` on the command line or by the
``BRGAN_CONFIG`` environment variable; keys are the field names below, at the top level of the
file (no tables, except ``[[destinations]]``, one per PACS destination). An unknown key in the
file is an error that names the key.

Settings are read once, frozen, and passed down; libraries never read the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pacs_adapters.destination import DestinationConfig
from plugin.errors import PluginError

CONFIG_ENV_VAR = "BRGAN_CONFIG"


class ConfigError(PluginError):
    """The configuration file or environment is invalid; the message says which key and why."""


class Settings(BaseSettings):
    """Every setting of brgan-pacs, with its default. See ``brgan config show``."""

    model_config = SettingsConfigDict(
        env_prefix="BRGAN_",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # -- where things live ---------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("./brgan-data"),
        description="Root folder for the spool, index, results, embedded broker and models.",
    )
    spool_dir: Path | None = Field(
        default=None, description="Received instances; default <data_dir>/spool."
    )
    results_dir: Path | None = Field(
        default=None,
        description="Result DICOM files from workers; default <data_dir>/results.",
    )
    registry_dir: Path | None = Field(
        default=None,
        description="Model registry (checkpoints, sha256); default <data_dir>/models.",
    )

    # -- DICOM listener --------------------------------------------------------------------
    ae_title: str = Field(default="BRGAN", max_length=16, description="Our AE title.")
    host: str = Field(default="0.0.0.0", description="Address the listener binds to.")
    port: int = Field(
        default=11112, ge=0, le=65535, description="DICOM listener port (0: any free port)."
    )
    allowed_calling_aets: list[str] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate; empty accepts all (warned at start).",
    )
    require_called_aet: bool = Field(
        default=True, description="Reject associations whose Called AE is not our AE title."
    )
    max_associations: int = Field(
        default=32,
        ge=1,
        description="Concurrent associations; one more is rejected as transient (the sender "
        "retries). 20 at once, 400 instances, were measured by bench/load.py.",
    )
    max_pdu_size: int = Field(
        default=131072, ge=0, description="Maximum PDU length we receive (0 = unlimited)."
    )
    max_dataset_bytes: int = Field(
        default=2 * 1024**3, ge=1024, description="Largest single instance accepted, in bytes."
    )
    chunked_receive: bool = Field(
        default=True,
        description=(
            "Stream every received data set to a temp file in the spool instead of memory "
            "(flat memory for tomosynthesis); the file is then renamed into place."
        ),
    )
    tls_cert: Path | None = Field(default=None, description="Server certificate (PEM) for TLS.")
    tls_key: Path | None = Field(default=None, description="Server private key (PEM) for TLS.")
    tls_key_password: SecretStr | None = Field(default=None, description="Key password.")
    tls_ca: Path | None = Field(
        default=None, description="CA bundle; when set, client certificates are required."
    )

    # -- study assembly ----------------------------------------------------------------------
    complete_grace: float = Field(
        default=10.0, ge=0, description="Seconds of quiet after the 4 standard views arrive."
    )
    stable_age: float = Field(
        default=60.0, ge=0, description="Seconds without a new instance before a study is ready."
    )
    coordinator_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between passes of the study coordinator (assembly, retention).",
    )
    retention_days: float = Field(
        default=7.0, ge=0, description="Days after a study is done before its spool files go."
    )

    # -- queue and worker --------------------------------------------------------------------
    broker_url: SecretStr | None = Field(
        default=None,
        description="Celery broker, e.g. redis://host:6379/0. Unset: embedded mode, no server.",
    )
    result_backend: SecretStr | None = Field(
        default=None, description="Celery result backend; default: same as the broker."
    )
    redis_tls_ca: Path | None = Field(
        default=None,
        description="CA bundle (PEM) that signed the Redis server's certificate, for rediss:// "
        "URLs (unset: the system CAs). The server certificate is always verified.",
    )
    redis_tls_cert: Path | None = Field(
        default=None,
        description="Client certificate (PEM) for a Redis that requires one "
        "(tls-auth-clients yes); set with redis_tls_key.",
    )
    redis_tls_key: Path | None = Field(
        default=None, description="Private key (PEM) of redis_tls_cert."
    )
    model_version: str | None = Field(
        default=None, description="Model version to use; default: the registry's active one."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Worker device.")
    shift_guard: Literal["refuse", "warn", "off"] = Field(
        default="refuse",
        description="Domain-shift guard (docs/model.md): an image whose features lie outside the "
        "model's training distribution is reported not analyzed (refuse), analyzed with a "
        "caution in every result object (warn: the SR's summary, the CAD SR's finding, the "
        "heatmap SC's legend, the summary SC), or analyzed silently (off). Models without a guard "
        "are not checked.",
    )
    worker_heartbeat: float = Field(
        default=10.0, gt=0, description="Seconds between a running task's heartbeats."
    )
    worker_lease: float = Field(
        default=90.0,
        gt=0,
        description="A started task whose heartbeat is older than this is taken for lost with "
        "its worker (SIGKILL, OOM, power) and re-sent under the same id.",
    )
    index_busy_timeout: float = Field(
        default=8.0,
        gt=0,
        description="Seconds a write to the index waits for a lock held by another process "
        "(an admin's sqlite3 session, a backup) before the instance is refused 0xA700; the file "
        "is already in the spool and the sender retries. Keep it below the sender's DIMSE "
        "timeout (Orthanc's DicomScuTimeout is 10 s by default), or the sender aborts the "
        "association before it hears the 0xA700.",
    )
    disk_full_retry: float = Field(
        default=60.0,
        gt=0,
        description="Seconds before a study whose analysis stopped on a full results disk is "
        "sent again (it is retried until space returns; `brgan status` shows why it waits).",
    )
    requeue_after: float = Field(
        default=900.0,
        ge=0,
        description="Seconds a queued task may stay unknown to the result backend before it is "
        "re-sent (broker flushed or restarted).",
    )

    # -- result objects ----------------------------------------------------------------------
    manufacturer: str = Field(
        default="brgan-pacs",
        min_length=1,
        description="Manufacturer (0008,0070) of our result objects; also the loop guard: an "
        "incoming object with this Manufacturer is never analyzed.",
    )
    manufacturer_model_name: str = Field(
        default="BR-GAN", min_length=1, description="ManufacturerModelName of our result objects."
    )
    device_uid: str = Field(
        default="2.25.143975526148394095567062155405393315410",
        pattern=r"^[0-9]+(\.[0-9]+)*$",
        max_length=64,
        description="DeviceUID (0018,1002) of our result objects (one per installation; set "
        "your own from your UID root). Also a loop-guard key.",
    )
    write_cad_sr: bool = Field(
        default=True, description="Write a Mammography CAD SR (TID 4000) per study version."
    )
    write_not_analyzed_sr: bool = Field(
        default=True,
        description="A study where nothing could be analyzed still gets SRs saying so, image by "
        "image (so 'not read by the AI' is never mistaken for 'nothing found').",
    )
    write_rejection_kos: bool = Field(
        default=True,
        description="A new version of a study's results also writes an IOCM Key Object Selection "
        "'Rejected for Quality Reasons' (113001) for the objects it supersedes.",
    )
    heatmap_max_size: int = Field(
        default=1024,
        ge=0,
        description="Longest side, in pixels, of the heatmap Secondary Capture (0 = full size; "
        "a full-size RGB mammogram is about 25 MB).",
    )

    # -- sending results (the outbox, DESIGN.md step 8) -----------------------------------------
    destinations: list[DestinationConfig] = Field(
        default_factory=list,
        description="Where result objects go: DIMSE C-STORE (kind = 'dimse': ae_title, host, "
        "port) or DICOMweb STOW-RS (kind = 'stow': url); each object goes to each. Empty = "
        "results stay in the results folder.",
    )
    outbox_backoff_initial: float = Field(
        default=10.0, gt=0, description="First retry delay (s) after a transient failure."
    )
    outbox_backoff_max: float = Field(
        default=600.0, gt=0, description="Cap on the retry delay (s); it doubles until then."
    )
    outbox_retry_hours: float = Field(
        default=24.0,
        gt=0,
        description="Transient failures are retried this long before a row is marked failed.",
    )
    outbox_interval: float = Field(
        default=2.0, gt=0, description="Seconds between outbox passes (woken early on new rows)."
    )

    # -- observability (docs/deployment.md, "Observability") --------------------------------
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the /metrics, /healthz and /readyz endpoints bind to (0.0.0.0 "
        "for a Prometheus or a kubelet on another host).",
    )
    metrics_port: int = Field(
        default=9101,
        ge=0,
        le=65535,
        description="Port of `brgan serve`'s metrics and health endpoints (0 = off).",
    )
    worker_metrics_port: int = Field(
        default=9102,
        ge=0,
        le=65535,
        description="Port of `brgan worker`'s metrics and health endpoints (0 = off; one port "
        "per worker on a host, see `brgan worker --metrics-port`).",
    )
    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="/readyz answers 503 when the spool's disk (a worker: the results' disk) "
        "has less free space than this, in MiB.",
    )

    # -- logging -----------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(default=False, description="One JSON object per log line.")
    hash_uids_in_logs: bool = Field(default=False, description="Log UIDs as short hashes.")

    @field_validator("destinations")
    @classmethod
    def _unique_destinations(cls, value: list[DestinationConfig]) -> list[DestinationConfig]:
        names = [d.name for d in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"destination names must be unique; repeated: {', '.join(twice)}")
        return value

    @model_validator(mode="after")
    def _redis_tls(self) -> Settings:
        """TLS to Redis is set by the redis_tls_* keys alone (docs/security.md)."""
        urls = [u.get_secret_value() for u in (self.broker_url, self.result_backend) if u]
        for url in urls:
            if any(k.lower().startswith("ssl_") for k in parse_qs(urlsplit(url).query)):
                raise ValueError(
                    "TLS options in a broker/result URL (ssl_*) are not used; set "
                    "redis_tls_ca, redis_tls_cert and redis_tls_key instead"
                )
        if (self.redis_tls_cert is None) != (self.redis_tls_key is None):
            raise ValueError("redis_tls_cert and redis_tls_key go together; set both or neither")
        tls_set = any(p is not None for p in (self.redis_tls_ca, self.redis_tls_cert))
        if tls_set and not any(u.startswith("rediss://") for u in urls):
            raise ValueError(
                "redis_tls_* are set but no broker_url/result_backend uses rediss:// "
                "(TLS); use a rediss:// URL or remove them"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: explicit arguments, environment, TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get(CONFIG_ENV_VAR)
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    # -- derived paths -----------------------------------------------------------------------
    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def results_path(self) -> Path:
        return self.results_dir or self.data_dir / "results"

    @property
    def registry_path(self) -> Path:
        return self.registry_dir or self.data_dir / "models"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.sqlite3"

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: ``brgan serve`` runs the whole job alone."""
        return self.broker_url is None


def _check_toml(path: Path) -> None:
    """Fail early, naming the key, on a file that is unreadable or has unknown keys."""
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist (set by --config or {CONFIG_ENV_VAR})"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        known = ", ".join(sorted(Settings.model_fields))
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(map(repr, unknown))}. "
            f"Known keys: {known}"
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings; ``config_file`` wins over ``$BRGAN_CONFIG``."""
    previous = os.environ.get(CONFIG_ENV_VAR)
    try:
        if config_file is not None:
            os.environ[CONFIG_ENV_VAR] = str(config_file)
        toml_path = os.environ.get(CONFIG_ENV_VAR)
        if toml_path:
            _check_toml(Path(toml_path))
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid configuration: {problems}") from exc
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop(CONFIG_ENV_VAR, None)
            else:
                os.environ[CONFIG_ENV_VAR] = previous


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def masked_view(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain values, secrets masked (for ``brgan config show``).

    URLs show their user but not their password; other secrets show as ``****``.
    """
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            value = _mask_url(secret) if "://" in secret else "****"
        elif isinstance(value, Path):
            value = str(value)
        elif name == "destinations":
            value = [
                {
                    k: ("****" if k == "auth_header" and v is not None else
                        str(v) if isinstance(v, Path) else v)
                    for k, v in d.model_dump().items()
                }
                for d in value
            ]  # fmt: skip
        out[name] = value
    return out
