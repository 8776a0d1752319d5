"""Where an S3 remote is and who we are there: endpoint, region and credentials,
taken the way other S3 tools take them (docs/user-guide.md, "S3 remotes").

- endpoint: the remote's own (``vsync remote add NAME s3://... --endpoint URL``,
  stored as ``[remote "NAME"] endpoint``), else ``AWS_ENDPOINT_URL_S3``, else
  ``AWS_ENDPOINT_URL``, else the profile's ``endpoint_url`` in
  ``~/.aws/config``; none at all means AWS itself.
- credentials: ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (with
  ``AWS_SESSION_TOKEN``), else the profile ``AWS_PROFILE`` (default
  ``default``) in ``~/.aws/credentials`` (``AWS_SHARED_CREDENTIALS_FILE``).
- region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region`` in
  ``~/.aws/config`` (``AWS_CONFIG_FILE``), else ``us-east-1``.

Nothing here talks to the network or imports the S3 client.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vsync.errors import UsageError

DEFAULT_REGION = "us-east-1"
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9._\[\]:-]+(?::[0-9]{1,5})?/?")
_REGION = re.compile(r"[A-Za-z0-9-]{1,64}")


class NoS3Credentials(UsageError):
    def __init__(self, profile: str) -> None:
        super().__init__(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            f"or give profile '{profile}' aws_access_key_id and aws_secret_access_key "
            "in ~/.aws/credentials (AWS_PROFILE names another)"
        )


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None  # None: AWS
    region: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @property
    def where(self) -> str:
        """The endpoint for messages."""
        return self.endpoint or "AWS S3"


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` if it is an ``http://`` or ``https://host[:port]`` URL, else UsageError."""
    if not _ENDPOINT.fullmatch(endpoint):
        raise UsageError(
            f"bad S3 endpoint {endpoint!r}: expected http://HOST[:PORT] or https://HOST[:PORT]"
        )
    return endpoint.rstrip("/")


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise UsageError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    return parser


def _get(parser: configparser.ConfigParser, section: str, key: str) -> str | None:
    if not parser.has_section(section):
        return None
    value = parser.get(section, key, fallback=None)
    return value.strip() if value else None


def s3_settings(
    endpoint: str | None = None, environ: Mapping[str, str] | None = None
) -> S3Settings:
    """The settings for an S3 remote whose own endpoint is ``endpoint`` (or None)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    profile = env.get("AWS_PROFILE") or "default"
    config = _ini(Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config"))
    section = "default" if profile == "default" else f"profile {profile}"

    endpoint = (
        endpoint
        or env.get("AWS_ENDPOINT_URL_S3")
        or env.get("AWS_ENDPOINT_URL")
        or _get(config, section, "endpoint_url")
    )
    region = (
        env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or _get(config, section, "region")
        or DEFAULT_REGION
    )
    if not _REGION.fullmatch(region):
        raise UsageError(f"bad S3 region {region!r}")

    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    token = env.get("AWS_SESSION_TOKEN")
    if not (key and secret):
        creds = _ini(Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"))
        key = _get(creds, profile, "aws_access_key_id")
        secret = _get(creds, profile, "aws_secret_access_key")
        token = _get(creds, profile, "aws_session_token")
    if not (key and secret):
        raise NoS3Credentials(profile)
    return S3Settings(
        None if endpoint is None else check_endpoint(endpoint), region, key, secret, token
    )
