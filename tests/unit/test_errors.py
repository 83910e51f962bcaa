"""One base for every error a user reads (`webhook.core.errors.UserError`): one line, made so
once, control characters escaped; each keeps the built-in base its callers may catch."""

from __future__ import annotations

import pytest

from webhook.audit.errors import AuditError
from webhook.certs.pki import CertError
from webhook.cli import InputError
from webhook.core.analysis import Refusal
from webhook.core.bounded import JsonLimitError
from webhook.core.broker_config import BrokerConfigError
from webhook.core.command import CommandError, Uneditable
from webhook.core.config import ConfigError
from webhook.core.errors import UserError, one_line, printable
from webhook.core.gson import GsonError, GsonLimitError
from webhook.core.quantity import QuantityError
from webhook.core.review import ReviewError
from webhook.core.workload import WorkloadError
from webhook.kube.client import KubeError
from webhook.server.app import StartupError
from webhook.server.tls import CertLoadError
from webhook.server.wire import BadJson

USER_ERRORS: list[type[UserError]] = [
    AuditError,
    BadJson,
    BrokerConfigError,
    CertError,
    CertLoadError,
    CommandError,
    ConfigError,
    GsonError,
    GsonLimitError,
    InputError,
    JsonLimitError,
    KubeError,
    QuantityError,
    Refusal,
    ReviewError,
    StartupError,
    Uneditable,
    WorkloadError,
]
WERE_VALUE_ERRORS = set(USER_ERRORS) - {AuditError, CertLoadError, KubeError, StartupError}


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda c: c.__name__)
def test_every_user_facing_error_is_one_line_with_controls_escaped(cls: type[UserError]) -> None:
    error = cls("https://peer/\x1b[2J:  HTTP 500\n\tbad\r\nreason\x07\x9b")
    assert isinstance(error, UserError)
    assert str(error) == "https://peer/\\x1b[2J: HTTP 500 bad reason\\x07\\x9b"
    if cls in WERE_VALUE_ERRORS:
        assert isinstance(error, ValueError), "an `except ValueError` written for it still holds"


def test_kube_error_is_still_a_runtime_error() -> None:
    assert isinstance(KubeError("x"), RuntimeError)


def test_one_line_and_printable() -> None:
    assert one_line("  a\n\n b\u2028c\x00 ") == "a b c\\x00"
    assert one_line(ValueError("x\ny")) == "x y"
    assert printable({"kid": "\x1b"}) == '{"kid": "\\u001b"}'  # JSON already escapes it
    assert printable("tab\tkept as \\x09") == "tab\\x09kept as \\x09"
