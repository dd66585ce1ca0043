"""The API behind TLS with a certificate of its own CA: the client refusing the certificate fails the
task at once saying how to give the CA (it was retried as `ApiUnavailable`, urllib3's retries times
the task's, for minutes); HttpHook's extra `verify` (a CA bundle, or false) reaches the session.
A small HTTPS server on the loopback with a self-signed certificate made here (`cryptography`)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from base_sync import airflow_tasks
from base_sync.errors import ApiUnavailable, ConfigurationError
from base_sync.settings import SyncSettings
from testbed.servers import empty_bulk_answerer


def _self_signed(folder: Path, address: str = "127.0.0.1", expired: bool = False) -> tuple[Path, Path]:
    """A certificate for `address` that is its own CA (out of date: `expired`); (certificate, key) as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "base-b-api test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=3 if expired else 0, minutes=5))
        .not_valid_after(now + datetime.timedelta(days=-1 if expired else 1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "api.pem", folder / "api.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(params=[{}], ids=["valid"])
def tls_api(tmp_path, request) -> Iterator[tuple[int, Path]]:
    """An HTTPS server answering every POST with an empty JSON object, as an empty bulk delete is
    answered; (its port, the CA bundle that signed its certificate). `request.param`: how the
    certificate is made (`_self_signed`'s options)."""

    cert, key = _self_signed(tmp_path, **request.param)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with empty_bulk_answerer(tls=context) as port:
        yield port, cert


@pytest.fixture
def api_connection(tmp_path, monkeypatch, tls_api):
    """Set the API connection to the HTTPS server, with `extra`."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    port, _ = tls_api

    def use(extra: dict | None = None) -> None:
        given = {"conn_type": "https", "host": "127.0.0.1", "port": port, "password": "token", "extra": extra or {}}
        monkeypatch.setenv("AIRFLOW_CONN_BASE_B_API", json.dumps(given))

    return use


def check() -> None:
    api = airflow_tasks._api(SyncSettings(), "batch")
    try:
        api.check_writes("articles")
    finally:
        api.close()


def test_a_certificate_the_client_refuses_fails_at_once_saying_how_to_give_the_ca(api_connection):
    api_connection()
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="certificate was refused") as refused:
        check()
    assert time.monotonic() - started < 5, "the refusal was retried"
    assert '"verify": "/path/to/ca.pem"' in str(refused.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # what verify false asks for
@pytest.mark.parametrize("verify", ["ca", False, "false"], ids=["ca-bundle", "false", "false-as-text"])
def test_the_connections_verify_extra_reaches_the_session(api_connection, tls_api, verify):
    api_connection({"verify": str(tls_api[1]) if verify == "ca" else verify})
    check()


def test_a_ca_bundle_that_is_not_there_fails_naming_the_connection(api_connection, tmp_path):
    """requests raised an OSError on every call (no CA bundle at the path), which the task retried."""
    api_connection({"verify": str(tmp_path / "no-such-ca.pem")})
    with pytest.raises(ConfigurationError, match="'base_b_api': extra verify=.* nor the path of a CA bundle"):
        check()


@pytest.mark.parametrize("tls_api", [{"expired": True}], ids=["expired"], indirect=True)
def test_an_out_of_date_certificate_is_a_retry_that_says_so(api_connection, tls_api):
    """Its owners renew it (a retry may pass): not refused for good, and not told to give a CA (review)."""
    api_connection({"verify": str(tls_api[1])})
    with pytest.raises(ApiUnavailable, match="the API's TLS certificate is out of date .*: renew it"):
        check()


@pytest.mark.parametrize("tls_api", [{"address": "127.0.0.2"}], ids=["another-host"], indirect=True)
def test_a_certificate_for_another_host_is_named_as_such(api_connection, tls_api):
    api_connection({"verify": str(tls_api[1])})
    with pytest.raises(ConfigurationError, match="the API's TLS certificate is not for this host"):
        check()
